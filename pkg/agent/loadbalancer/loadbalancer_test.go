package loadbalancer

import (
	"bufio"
	"context"
	"net"
	"testing"

	"k8s.io/klog/v2"
)

// backend answers each line with its name.
func backend(t *testing.T, name string) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					if _, err := r.ReadString('\n'); err != nil {
						return
					}
					if _, err := c.Write([]byte(name + "\n")); err != nil {
						return
					}
				}
			}()
		}
	}()
	return l
}

func ask(t *testing.T, addr string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("who\n")); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return ""
	}
	return line[:len(line)-1]
}

func TestFailoverAndReturn(t *testing.T) {
	a, b := backend(t, "a"), backend(t, "b")
	defer b.Close()
	lb := New("127.0.0.1:0", []string{a.Addr().String(), b.Addr().String(), a.Addr().String()}, klog.Background())
	if got := lb.Servers(); len(got) != 2 {
		t.Fatalf("duplicates kept: %v", got)
	}
	if err := lb.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer lb.Stop()
	addr := lb.listener.Addr().String()
	if got := ask(t, addr); got != "a" {
		t.Fatalf("first server not used: %q", got)
	}
	a.Close()
	if got := ask(t, addr); got != "b" {
		t.Fatalf("no failover: %q", got)
	}
	// b stays preferred while it answers.
	if got := ask(t, addr); got != "b" {
		t.Fatalf("did not stick to the answering server: %q", got)
	}
	lb.SetServers(nil)
	if got := ask(t, addr); got != "" {
		t.Fatalf("answered with no servers: %q", got)
	}
}

func TestStopClosesConnections(t *testing.T) {
	a := backend(t, "a")
	defer a.Close()
	lb := New("127.0.0.1:0", []string{a.Addr().String()}, klog.Background())
	if err := lb.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", lb.listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("who\n")); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	if _, err := r.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	if err := lb.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ReadString('\n'); err == nil {
		t.Fatal("connection survived Stop")
	}
}
