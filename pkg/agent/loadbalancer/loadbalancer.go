// Package loadbalancer is the agent's client-side load balancer: a TCP
// proxy on loopback that the node's components (kubelet, kube-proxy,
// flannel) use as their apiserver. Each connection goes to the first server
// that answers, starting with the one that answered last, so a server that
// goes away is skipped and one that comes back is used again. TLS passes
// through untouched: clients verify the apiserver themselves.
package loadbalancer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"time"

	"k8s.io/klog/v2"

	"github.com/kubling/kubling/pkg/component"
)

// dialTimeout bounds one connection attempt to one server.
const dialTimeout = 3 * time.Second

// LoadBalancer proxies Address to a list of servers ("host:port").
type LoadBalancer struct {
	Address string
	log     klog.Logger

	mu        sync.Mutex
	servers   []string
	preferred string
	listener  net.Listener
	stopped   bool
	conns     map[net.Conn]struct{}
	wg        sync.WaitGroup
}

var _ component.Component = (*LoadBalancer)(nil)

// New returns a load balancer listening on address (once started).
func New(address string, servers []string, log klog.Logger) *LoadBalancer {
	lb := &LoadBalancer{Address: address, log: log, conns: map[net.Conn]struct{}{}}
	lb.SetServers(servers)
	return lb
}

// SetServers replaces the server list (duplicates dropped, order kept).
func (lb *LoadBalancer) SetServers(servers []string) {
	var list []string
	for _, s := range servers {
		if s != "" && !slices.Contains(list, s) {
			list = append(list, s)
		}
	}
	lb.mu.Lock()
	defer lb.mu.Unlock()
	if !slices.Equal(list, lb.servers) {
		lb.log.Info("Load balancer servers", "address", lb.Address, "servers", list)
	}
	lb.servers = list
	if !slices.Contains(list, lb.preferred) {
		lb.preferred = ""
	}
}

// Servers returns the current list.
func (lb *LoadBalancer) Servers() []string {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	return slices.Clone(lb.servers)
}

func (lb *LoadBalancer) Name() string { return "loadbalancer" }

// Start listens and serves in the background.
func (lb *LoadBalancer) Start(context.Context) error {
	l, err := net.Listen("tcp", lb.Address)
	if err != nil {
		return fmt.Errorf("load balancer: %w", err)
	}
	lb.mu.Lock()
	lb.listener = l
	lb.mu.Unlock()
	lb.wg.Add(1)
	go func() {
		defer lb.wg.Done()
		for {
			conn, err := l.Accept()
			if err != nil {
				return // closed by Stop
			}
			lb.wg.Add(1)
			go func() {
				defer lb.wg.Done()
				lb.proxy(conn)
			}()
		}
	}()
	return nil
}

// Ready: listening is all it takes.
func (lb *LoadBalancer) Ready(context.Context) error { return nil }

// Stop closes the listener and every proxied connection.
func (lb *LoadBalancer) Stop() error {
	lb.mu.Lock()
	lb.stopped = true
	if lb.listener != nil {
		lb.listener.Close()
	}
	for c := range lb.conns {
		c.Close()
	}
	lb.mu.Unlock()
	lb.wg.Wait()
	return nil
}

// order is the dial order: the last server that answered, then the rest.
func (lb *LoadBalancer) order() []string {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	out := make([]string, 0, len(lb.servers))
	if lb.preferred != "" {
		out = append(out, lb.preferred)
	}
	for _, s := range lb.servers {
		if s != lb.preferred {
			out = append(out, s)
		}
	}
	return out
}

func (lb *LoadBalancer) dial() (net.Conn, error) {
	var errs []error
	for _, s := range lb.order() {
		conn, err := net.DialTimeout("tcp", s, dialTimeout)
		if err == nil {
			lb.mu.Lock()
			if lb.preferred != s {
				lb.log.V(1).Info("Load balancer switched server", "server", s)
			}
			lb.preferred = s
			lb.mu.Unlock()
			return conn, nil
		}
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		return nil, errors.New("no servers")
	}
	return nil, errors.Join(errs...)
}

func (lb *LoadBalancer) track(conns ...net.Conn) bool {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	if lb.stopped {
		return false
	}
	for _, c := range conns {
		lb.conns[c] = struct{}{}
	}
	return true
}

func (lb *LoadBalancer) untrack(conns ...net.Conn) {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	for _, c := range conns {
		delete(lb.conns, c)
	}
}

func (lb *LoadBalancer) proxy(client net.Conn) {
	defer client.Close()
	server, err := lb.dial()
	if err != nil {
		// Clients retry on their own; say why at debug level only, as the
		// kubelet's own errors already tell that the apiserver is away.
		lb.log.V(1).Info("Load balancer found no server", "err", err.Error())
		return
	}
	defer server.Close()
	if !lb.track(client, server) {
		return // stopping: Stop has closed what it knew of
	}
	defer lb.untrack(client, server)
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		// Half-close so the other direction can finish its last bytes.
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		done <- struct{}{}
	}
	go pipe(server, client)
	go pipe(client, server)
	<-done
	<-done
}
