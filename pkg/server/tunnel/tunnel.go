// Package tunnel lets the apiserver reach nodes it cannot dial: an agent
// behind NAT reaches the server's 6443, but nothing reaches the agent. Each
// agent keeps a websocket open to every server (join.TunnelPath,
// authenticated with the node's client certificate), multiplexed by
// rancher/remotedialer; the apiserver's "cluster" egress selector sends its
// connections to kubelets and pods — logs, exec, attach, port-forward,
// proxy, webhooks, aggregated APIs — as HTTP CONNECT requests to this
// package's unix socket, which dials through the owning node's tunnel when
// it has one, else directly (the server's own node, a node of an older
// kubling, Service addresses).
package tunnel

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rancher/remotedialer"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	"github.com/kubling/kubling/pkg/component"
)

// Name is the component's name.
const Name = "tunnel"

// dialTimeout bounds one connection's set-up, through a tunnel or not.
const dialTimeout = 30 * time.Second

// Server holds the agents' tunnels and serves the apiserver's egress
// socket. Handler is mounted on the apiserver's port; the component (Start)
// serves the socket once the apiserver runs.
type Server struct {
	// Client makes the cluster-admin client (for the Nodes), once the
	// apiserver is up.
	Client func() (kubernetes.Interface, error)
	// Socket is the egress proxy's unix socket (the apiserver's
	// EgressSelectorConfiguration names it).
	Socket string
	Log    klog.Logger

	remote    *remotedialer.Server
	authn     authenticator.Request
	factory   informers.SharedInformerFactory
	nodes     corelisters.NodeLister
	byAddress cache.Indexer
	http      *http.Server
	cancel    context.CancelFunc
	serving   sync.WaitGroup
}

var _ component.Component = (*Server)(nil)

// Handler is the agents' tunnel endpoint. authn is the apiserver's own
// authenticator: a tunnel is a node's (system:node:<name> in system:nodes),
// keyed by its name; anything else is refused.
func (s *Server) Handler(authn authenticator.Request) http.Handler {
	s.authn = authn
	s.remote = remotedialer.New(s.authorize, func(w http.ResponseWriter, _ *http.Request, code int, err error) {
		http.Error(w, err.Error(), code)
	})
	return s.remote
}

// authorize names the node a tunnel request comes from.
func (s *Server) authorize(r *http.Request) (string, bool, error) {
	resp, ok, err := s.authn.AuthenticateRequest(r)
	if err != nil || !ok {
		return "", false, nil // 401; the reason stays out of the reply
	}
	name, isNode := strings.CutPrefix(resp.User.GetName(), "system:node:")
	if !isNode || name == "" || !slices.Contains(resp.User.GetGroups(), "system:nodes") {
		return "", false, nil
	}
	s.Log.Info("Node tunnel connected", "node", name)
	return name, true, nil
}

func (s *Server) Name() string { return Name }

// Start lists the Nodes (to know which node owns an address) and serves
// the egress socket.
func (s *Server) Start(ctx context.Context) error {
	if s.remote == nil {
		return errors.New("the tunnel endpoint is not mounted on the apiserver")
	}
	client, err := s.Client()
	if err != nil {
		return err
	}
	ctx, s.cancel = context.WithCancel(ctx)
	s.factory = informers.NewSharedInformerFactory(client, 0)
	nodes := s.factory.Core().V1().Nodes()
	if err := nodes.Informer().AddIndexers(cache.Indexers{byAddress: nodeAddresses}); err != nil {
		return fmt.Errorf("index nodes by address: %w", err)
	}
	s.nodes, s.byAddress = nodes.Lister(), nodes.Informer().GetIndexer()
	s.factory.Start(ctx.Done())

	if err := os.Remove(s.Socket); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove stale egress socket: %w", err)
	}
	l, err := net.Listen("unix", s.Socket)
	if err != nil {
		return fmt.Errorf("egress socket: %w", err)
	}
	if err := os.Chmod(s.Socket, 0o600); err != nil {
		l.Close()
		return err
	}
	s.http = &http.Server{Handler: http.HandlerFunc(s.serveConnect), ReadHeaderTimeout: 10 * time.Second,
		BaseContext: func(net.Listener) context.Context { return ctx }}
	s.serving.Add(1)
	go func() {
		defer s.serving.Done()
		if err := s.http.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.Log.Error(err, "Egress socket")
		}
	}()
	return nil
}

// Ready returns at once: the socket serves; until the Nodes are listed,
// every connection is dialled directly, as for a node without a tunnel.
func (s *Server) Ready(context.Context) error { return nil }

// Stop closes the socket; connections under way end with the process.
func (s *Server) Stop() error {
	s.cancel()
	err := s.http.Close()
	s.serving.Wait()
	s.factory.Shutdown()
	os.Remove(s.Socket)
	return err
}

// serveConnect answers the apiserver's CONNECT host:port with a
// connection to it, then copies both ways.
func (s *Server) serveConnect(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodConnect {
		http.Error(w, "CONNECT only", http.StatusMethodNotAllowed)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), dialTimeout)
	upstream, node, err := s.dial(ctx, r.Host)
	cancel()
	if err != nil {
		s.Log.V(1).Info("Egress dial failed", "address", r.Host, "node", node, "err", err)
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	hijacker, ok := w.(http.Hijacker)
	if !ok {
		upstream.Close()
		http.Error(w, "cannot hijack", http.StatusInternalServerError)
		return
	}
	conn, buf, err := hijacker.Hijack()
	if err != nil {
		upstream.Close()
		return
	}
	if _, err := conn.Write([]byte("HTTP/1.1 200 Connection established\r\n\r\n")); err != nil {
		conn.Close()
		upstream.Close()
		return
	}
	pipe(conn, buf, upstream)
}

// dial connects to addr through the tunnel of the node that owns it, or
// directly; it returns the node whose tunnel it used ("" when direct).
func (s *Server) dial(ctx context.Context, addr string) (net.Conn, string, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, "", err
	}
	if node := s.owner(host); node != "" && s.remote.HasSession(node) {
		conn, err := s.remote.Dialer(node)(ctx, "tcp", addr)
		return conn, node, err
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	return conn, "", err
}

// byAddress indexes the Nodes by their status addresses (the kubelets'
// addresses, which the apiserver dials most).
const byAddress = "address"

func nodeAddresses(obj any) ([]string, error) {
	n, ok := obj.(*corev1.Node)
	if !ok {
		return nil, nil
	}
	var out []string
	for _, a := range n.Status.Addresses {
		out = append(out, a.Address)
	}
	return out, nil
}

// owner is the node with host among its addresses or pod CIDRs, or "".
func (s *Server) owner(host string) string {
	if found, err := s.byAddress.ByIndex(byAddress, host); err == nil && len(found) > 0 {
		if n, ok := found[0].(*corev1.Node); ok {
			return n.Name
		}
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return ""
	}
	// A pod's address (a webhook, an aggregated API): the node whose pod
	// CIDR holds it.
	nodes, err := s.nodes.List(labels.Everything())
	if err != nil {
		return ""
	}
	for _, n := range nodes {
		for _, c := range n.Spec.PodCIDRs {
			if p, err := netip.ParsePrefix(c); err == nil && p.Contains(ip.Unmap()) {
				return n.Name
			}
		}
	}
	return ""
}

// pipe copies between the apiserver's connection (with what it sent after
// the CONNECT, still buffered) and the upstream one until both sides end.
func pipe(conn net.Conn, buf *bufio.ReadWriter, upstream net.Conn) {
	defer conn.Close()
	defer upstream.Close()
	done := make(chan struct{}, 2)
	go func() {
		_, _ = io.Copy(upstream, buf.Reader)
		closeWrite(upstream)
		done <- struct{}{}
	}()
	go func() {
		_, _ = io.Copy(conn, upstream)
		closeWrite(conn)
		done <- struct{}{}
	}()
	<-done
	<-done
}

func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
}
