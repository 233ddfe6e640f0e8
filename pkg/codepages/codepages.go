// Package codepages gives back the resident pages of kubling's own
// executable that only start-up used.
//
// kubling is one large static executable, and starting it touches most of
// it: every linked package's init, the apiserver's OpenAPI and discovery
// build, the first informer syncs. Those code and read-only data pages stay
// mapped, and counted in kubling's resident memory, long after start-up,
// although an idle kubling runs a small part of them. The kernel maps a
// file's pages 64 KB around each fault, so the scattered start-up touches
// most of the file (measured: 186 MB of a 195 MB executable on the server,
// 81 MB of the agent build).
//
// Release pages those mappings out (madvise MADV_PAGEOUT, Linux 5.4): their
// clean pages leave this process and the page cache, and the ones idle
// running uses are read back from the executable once, on their next use.
// Unmapping them only (MADV_DONTNEED) does not last: the pages stay cached,
// and the kernel maps cached pages 64 KB around each fault, so within
// seconds almost all are back (measured on the server: 184 MB released,
// 168 MB back 10 s later; paged out instead, 55 MB stayed and 90 MB were
// back two minutes later). Only the executable's read-only mappings that
// hold no page of their own (no copy-on-write page, as a relocated
// read-only segment has) are touched.
package codepages

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"
)

// Mapping is one mapping of /proc/self/smaps, with what Release needs.
type Mapping struct {
	Start, End uintptr
	Perms      string
	Path       string
	Rss        int64 // bytes
	Anonymous  int64 // bytes: private copies (copy-on-write pages)
}

// Releasable reports whether m is a mapping of exe that Release may drop:
// read-only, and holding no page of its own.
func (m Mapping) Releasable(exe string) bool {
	return m.Path == exe && len(m.Perms) == 4 && m.Perms[0] == 'r' && m.Perms[1] == '-' && m.Anonymous == 0
}

// ParseSmaps reads the mappings of an smaps file.
func ParseSmaps(r io.Reader) ([]Mapping, error) {
	var out []Mapping
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if key, ok := strings.CutSuffix(fields[0], ":"); ok {
			if len(out) == 0 || len(fields) < 2 {
				continue
			}
			if key != "Rss" && key != "Anonymous" {
				continue
			}
			kb, err := strconv.ParseInt(fields[1], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("smaps line %q: %w", line, err)
			}
			if key == "Rss" {
				out[len(out)-1].Rss = kb * 1024
			} else {
				out[len(out)-1].Anonymous = kb * 1024
			}
			continue
		}
		// A mapping's header: start-end perms offset dev inode [path].
		start, end, ok := strings.Cut(fields[0], "-")
		if !ok || len(fields) < 5 {
			return nil, fmt.Errorf("smaps line %q: not a mapping", line)
		}
		s, err1 := strconv.ParseUint(start, 16, 64)
		e, err2 := strconv.ParseUint(end, 16, 64)
		if err1 != nil || err2 != nil || e < s {
			return nil, fmt.Errorf("smaps line %q: bad address range", line)
		}
		m := Mapping{Start: uintptr(s), End: uintptr(e), Perms: fields[1]}
		// The path is the rest of the line after the inode: it may hold
		// spaces, and ends in " (deleted)" once the file is replaced.
		rest := line
		for range 5 {
			rest = strings.TrimLeft(rest, " ")
			if i := strings.IndexByte(rest, ' '); i >= 0 {
				rest = rest[i:]
			} else {
				rest = ""
			}
		}
		m.Path = strings.TrimSpace(rest)
		out = append(out, m)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read smaps: %w", err)
	}
	return out, nil
}

// Release pages out the executable's releasable mappings and returns how
// many bytes of them were resident. On a kernel without MADV_PAGEOUT it
// returns the kernel's EINVAL and changes nothing.
func Release() (int64, error) {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return 0, fmt.Errorf("find the executable: %w", err)
	}
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return 0, err
	}
	maps, err := ParseSmaps(f)
	f.Close()
	if err != nil {
		return 0, err
	}
	var released int64
	for _, m := range maps {
		if !m.Releasable(exe) || m.End == m.Start {
			continue
		}
		// Through the system call, not unix.Madvise: the range is not memory
		// Go allocated, and no Go value points into it as a slice.
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, m.Start, m.End-m.Start, unix.MADV_PAGEOUT); errno != 0 {
			return released, fmt.Errorf("release %x-%x: %w", m.Start, m.End, errno)
		}
		released += m.Rss
	}
	return released, nil
}

// AfterReady is how long after kubling reports ready its start-up is taken
// as over: the node's first pods start, informers finish their first sync.
const AfterReady = 30 * time.Second

// ReleaseAfter waits delay, then releases the start-up pages once and logs
// what it gave back. It returns early, releasing nothing, when ctx ends.
func ReleaseAfter(ctx context.Context, log klog.Logger, delay time.Duration) {
	select {
	case <-ctx.Done():
		return
	case <-time.After(delay):
	}
	released, err := Release()
	if err != nil {
		log.V(1).Info("Could not release start-up code pages", "err", err)
		return
	}
	log.V(1).Info("Released start-up code pages", "MB", released>>20)
}
