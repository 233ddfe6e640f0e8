// Package hostcheck is everything kubling asks of, or sets on, the host it
// runs on, in one place: root, ports, writable folders and the data-dir lock
// (this file); kernel features and the sysctls a node needs (kernel.go);
// cgroups and capabilities (facts.go); NFS support (nfs.go); address ranges
// against the host's routes (routes.go). `kubling server`, `kubling agent`
// and `kubling check-config` all use it, so each check exists once. Each
// failure is one line naming what is wrong and how to fix it.
package hostcheck

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// RequireRoot refuses to go on unless running as root.
func RequireRoot(command string) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("%s must run as root (try sudo)", command)
	}
	return nil
}

// Port is a port kubling needs and who needs it.
type Port struct {
	Host string
	Port int
	What string
}

// PortsFree refuses the first port that is taken.
func PortsFree(ports []Port) error {
	for _, p := range ports {
		if err := portFree(p.Host, p.Port); err != nil {
			return fmt.Errorf("port %d, needed by %s, is not free: %w (is another kubling or Kubernetes running?)", p.Port, p.What, err)
		}
	}
	return nil
}

func portFree(host string, port int) error {
	l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		var errno syscall.Errno
		if errors.As(err, &errno) && errno == syscall.EADDRINUSE {
			return errors.New("address already in use")
		}
		return err
	}
	return l.Close()
}

// Writable checks, without creating anything, that path is (or can be
// created as) a writable directory: its nearest existing ancestor must be a
// directory that accepts writes (root passes permission bits, not a read-only
// mount).
func Writable(path string) error {
	p := path
	for {
		info, err := os.Stat(p)
		if err == nil {
			if !info.IsDir() {
				return fmt.Errorf("%s is not a directory", p)
			}
			if err := unix.Access(p, unix.W_OK); err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			return nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return err
		}
		parent := filepath.Dir(p)
		if parent == p {
			return err
		}
		p = parent
	}
}

// LockDir takes an exclusive lock on a data dir for the life of the
// process, so two kublings never share one.
func LockDir(dir string) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("data dir %s is in use by another kubling process", dir)
		}
		return nil, fmt.Errorf("lock data dir %s: %w", dir, err)
	}
	return f, nil
}
