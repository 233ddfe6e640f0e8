package payload

import (
	"embed"
	"encoding/binary"
	"os"
	"testing"
	"unsafe"
)

// Stand-ins for the archive, in .rodata; pages.txt (222 KB) spans whole
// pages at every page size.
//
//go:embed payload.go release_test.go testdata/pages.txt
var testFS embed.FS

// present reports whether the page holding addr is mapped in this process
// (bit 63 of its /proc/self/pagemap entry).
func present(t *testing.T, addr uintptr) bool {
	t.Helper()
	f, err := os.Open("/proc/self/pagemap") // Linux has it since 2.6.25
	if err != nil {
		t.Fatalf("open pagemap: %v", err)
	}
	defer f.Close()
	var entry [8]byte
	if _, err := f.ReadAt(entry[:], int64(addr/uintptr(os.Getpagesize()))*8); err != nil {
		t.Fatalf("read pagemap: %v", err)
	}
	return binary.LittleEndian.Uint64(entry[:])>>63 == 1
}

func TestEmbeddedDataIsTheFileInPlace(t *testing.T) {
	for _, name := range []string{"payload.go", "release_test.go", "testdata/pages.txt"} {
		want, err := testFS.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := embeddedData(testFS, name)
		if !ok || got != string(want) {
			t.Fatalf("%s: embeddedData ok=%v, %d bytes, want %d bytes equal to ReadFile", name, ok, len(got), len(want))
		}
	}
	if _, ok := embeddedData(testFS, "missing.go"); ok {
		t.Fatal("embeddedData found a file the FS does not hold")
	}
	var empty embed.FS
	if _, ok := embeddedData(empty, "payload.go"); ok {
		t.Fatal("embeddedData found a file in an empty FS")
	}
}

func TestReleasePagesUnmapsAndDataStaysReadable(t *testing.T) {
	data, ok := embeddedData(testFS, "testdata/pages.txt")
	if !ok {
		t.Fatal("embeddedData: not found")
	}
	page := uintptr(os.Getpagesize())
	start := uintptr(unsafe.Pointer(unsafe.StringData(data)))
	first := (start + page - 1) &^ (page - 1)
	// pages.txt is over 128 KiB: it holds a whole page at any page size
	// Linux uses (4, 16 or 64 KiB).
	if first+page > start+uintptr(len(data)) {
		t.Fatalf("pages.txt (%d bytes) holds no whole %d-byte page", len(data), page)
	}
	sum := 0
	for i := 0; i < len(data); i++ {
		sum += int(data[i])
	}
	if !present(t, first) {
		t.Fatal("a page just read is not mapped")
	}
	if err := releasePages(data); err != nil {
		t.Fatal(err)
	}
	if present(t, first) {
		t.Fatal("the page is still mapped after releasePages")
	}
	again := 0
	for i := 0; i < len(data); i++ {
		again += int(data[i])
	}
	want, _ := testFS.ReadFile("testdata/pages.txt")
	if again != sum || data != string(want) {
		t.Fatal("the data changed after releasePages")
	}
}
