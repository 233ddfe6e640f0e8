package testutil

import (
	"net"
	"slices"
	"sync"
	"testing"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
)

// LineLog is a logger that keeps each line it is given, and a function
// that returns the lines so far; safe for a loop logging in the background.
func LineLog() (logr.Logger, func() []string) {
	var mu sync.Mutex
	var lines []string
	log := funcr.New(func(_, args string) { mu.Lock(); lines = append(lines, args); mu.Unlock() }, funcr.Options{})
	return log, func() []string { mu.Lock(); defer mu.Unlock(); return slices.Clone(lines) }
}

// RefusedAddr is a loopback host:port where nothing listens (a connection
// is refused at once).
func RefusedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}
