package codepages

import (
	"encoding/binary"
	"os"
	"strings"
	"testing"
	"unsafe"
)

const sample = `00400000-00401000 r--p 00000000 fd:01 1000 /usr/local/bin/kubling
Size:                  4 kB
Rss:                   4 kB
Anonymous:             0 kB
00401000-05940000 r-xp 00001000 fd:01 1000 /usr/local/bin/kubling
Rss:               12288 kB
Anonymous:             0 kB
0f11b000-0f121000 r--p 0ed1a000 fd:01 1000 /usr/local/bin/kubling
Rss:                  24 kB
Anonymous:            24 kB
0f121000-0f200000 rw-p 0ed20000 fd:01 1000 /usr/local/bin/kubling
Rss:                 100 kB
Anonymous:           100 kB
7f0000000000-7f0000001000 r--p 00000000 fd:01 2000 /usr/lib/with space (deleted)
Rss:                   4 kB
Anonymous:             0 kB
7f0000002000-7f0000003000 rw-p 00000000 00:00 0 
Rss:                   4 kB
VmFlags: rd wr mr mw me ac sd
`

func TestParseSmaps(t *testing.T) {
	maps, err := ParseSmaps(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	if len(maps) != 6 {
		t.Fatalf("got %d mappings: %+v", len(maps), maps)
	}
	if m := maps[1]; m.Start != 0x401000 || m.End != 0x5940000 || m.Perms != "r-xp" || m.Path != "/usr/local/bin/kubling" || m.Rss != 12288*1024 || m.Anonymous != 0 {
		t.Errorf("text mapping: %+v", m)
	}
	if got := maps[4].Path; got != "/usr/lib/with space (deleted)" {
		t.Errorf("path with a space: %q", got)
	}
	if got := maps[5].Path; got != "" {
		t.Errorf("anonymous mapping's path: %q", got)
	}
	var releasable []int
	for i, m := range maps {
		if m.Releasable("/usr/local/bin/kubling") {
			releasable = append(releasable, i)
		}
	}
	// Not the relocated read-only segment (its pages are private copies),
	// not the writable data, not another file's mapping.
	if len(releasable) != 2 || releasable[0] != 0 || releasable[1] != 1 {
		t.Errorf("releasable mappings: %v", releasable)
	}
}

func TestParseSmapsRefusesGarbage(t *testing.T) {
	for _, in := range []string{"zz-00 r--p 0 0 0\n", "1000-2000\n", "00400000-00401000 r--p 0 fd:01 1 /x\nRss: many kB\n"} {
		if _, err := ParseSmaps(strings.NewReader(in)); err == nil {
			t.Errorf("%q: no error", in)
		}
	}
}

// blob is 256 KB of read-only data in the test binary, built by the
// compiler from constants: its middle pages are far from anything else the
// test touches (the kernel maps file pages 64 KB around a fault).
const (
	s64  = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_"
	s1k  = s64 + s64 + s64 + s64 + s64 + s64 + s64 + s64 + s64 + s64 + s64 + s64 + s64 + s64 + s64 + s64
	s16k = s1k + s1k + s1k + s1k + s1k + s1k + s1k + s1k + s1k + s1k + s1k + s1k + s1k + s1k + s1k + s1k
	blob = s16k + s16k + s16k + s16k + s16k + s16k + s16k + s16k + s16k + s16k + s16k + s16k + s16k + s16k + s16k + s16k
)

// sum reads every byte of s.
func sum(s string) (n int) {
	for i := 0; i < len(s); i++ {
		n += int(s[i])
	}
	return n
}

// present reports whether the page holding addr is mapped in this process
// (bit 63 of its /proc/self/pagemap entry).
func present(t *testing.T, addr uintptr) bool {
	t.Helper()
	f, err := os.Open("/proc/self/pagemap")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var entry [8]byte
	if _, err := f.ReadAt(entry[:], int64(addr/uintptr(os.Getpagesize()))*8); err != nil {
		t.Fatal(err)
	}
	return binary.LittleEndian.Uint64(entry[:])>>63 == 1
}

func TestRelease(t *testing.T) {
	data := blob
	want := sum(data)
	middle := uintptr(unsafe.Pointer(unsafe.StringData(data))) + uintptr(len(data)/2)
	if !present(t, middle) {
		t.Fatal("the read-only data just read is not mapped: cannot test")
	}
	released, err := Release()
	if err != nil {
		t.Fatal(err)
	}
	if released < int64(len(data)) {
		t.Errorf("released %d bytes, less than the %d just read", released, len(data))
	}
	if present(t, middle) {
		t.Error("the executable's read-only data is still mapped after Release")
	}
	// The process goes on: the pages fault back, unchanged.
	if got := sum(data); got != want {
		t.Errorf("read-only data changed by Release: sum %d, want %d", got, want)
	}
	if !present(t, middle) {
		t.Error("read-only data read again is not mapped")
	}
}
