//go:build e2e

package e2e

import (
	"net"
	"syscall"
)

func listenAny() (net.Listener, error) { return net.Listen("tcp", ":0") }

func portOf(l net.Listener) int { return l.Addr().(*net.TCPAddr).Port }

// nobody runs a child as an unprivileged user.
func nobody(uid int) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}}
}
