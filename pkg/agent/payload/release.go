package payload

import (
	"embed"
	"io"
	"io/fs"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// embeddedData returns the bytes of name as they lie in the binary's
// read-only mapping, without copying them, or false where that cannot be
// done safely.
//
// embed.FS keeps each file as a string in .rodata and offers no way to reach
// it but copies. Its layout (a pointer to a slice of {name, data string;
// hash [16]byte}) has not changed since Go 1.16; the result is checked
// against what the FS itself reads (size and first bytes), and a mismatch
// means "cannot", never a wrong answer.
func embeddedData(efs embed.FS, name string) (string, bool) {
	type file struct {
		name string
		data string
		hash [16]byte
	}
	type fsLayout struct{ files *[]file }
	info, err := fs.Stat(efs, name)
	if err != nil || info.IsDir() {
		return "", false
	}
	f, err := efs.Open(name)
	if err != nil {
		return "", false
	}
	defer f.Close()
	head := make([]byte, 64)
	n, err := io.ReadFull(f, head)
	if err != nil && err != io.ErrUnexpectedEOF {
		return "", false
	}
	head = head[:n]
	layout := (*fsLayout)(unsafe.Pointer(&efs))
	if layout.files == nil {
		return "", false
	}
	for _, e := range *layout.files {
		if len(e.data) == int(info.Size()) && e.data[:n] == string(head) && e.name == name {
			return e.data, true
		}
	}
	return "", false
}

// releasePages gives back the pages that hold data (a string in the
// binary's read-only mapping): paged out (MADV_PAGEOUT, Linux 5.4), they
// leave this process and the page cache, which the plain archive (160 MB
// for amd64) would otherwise fill once; on an older kernel they are only
// unmapped (they stay cached, reclaimable). They come back on the next
// read. Only whole pages inside data are released.
func releasePages(data string) error {
	if len(data) == 0 {
		return nil
	}
	page := uintptr(os.Getpagesize())
	base := unsafe.StringData(data)
	start := uintptr(unsafe.Pointer(base))
	first := (start + page - 1) &^ (page - 1)
	last := (start + uintptr(len(data))) &^ (page - 1)
	if last <= first {
		return nil
	}
	mem := unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(base), first-start)), last-first)
	if err := unix.Madvise(mem, unix.MADV_PAGEOUT); err == nil {
		return nil
	}
	return unix.Madvise(mem, unix.MADV_DONTNEED)
}
