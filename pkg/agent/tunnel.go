package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/rancher/remotedialer"
	"k8s.io/klog/v2"

	"github.com/kubling/kubling/pkg/component"
	"github.com/kubling/kubling/pkg/join"
)

// tunnel is the node's tunnel client, to the servers servers lists.
func (n *Node) tunnel(servers func() []string, clusterCIDR netip.Prefix, log klog.Logger) *tunnelClient {
	l := n.layout
	return &tunnelClient{servers: servers, nodeName: n.Name(), nodeIPs: append([]string{n.ip}, n.cfg.NodeExternalIPs...), clusterCIDR: clusterCIDR,
		caFile: l.NodeServerCA(), certFile: l.NodeCert(join.KubeletClient), keyFile: l.NodeKey(join.KubeletClient), log: log}
}

// tunnelRetry is the pause before a lost or refused tunnel is opened again.
const tunnelRetry = 5 * time.Second

// tunnelClient keeps a tunnel open to every server the load balancer
// lists (pkg/server/tunnel): each server's apiserver reaches this node's
// kubelet and pods through it, so `kubectl logs/exec/port-forward`,
// webhooks and the metrics API work where nothing can dial the node (NAT).
// The tunnel is the node's: its client certificate authenticates it, and
// the server may only ask for the kubelet's port on the node's own
// addresses and for pod addresses in the cluster CIDR.
type tunnelClient struct {
	servers     func() []string // host:port of each server
	nodeName    string
	nodeIPs     []string // --node-ip and --node-external-ip
	clusterCIDR netip.Prefix
	// The node's client certificate and the CA that signs servers, read at
	// every connection (the renewer rewrites them).
	caFile, certFile, keyFile string
	log                       klog.Logger

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

var _ component.Component = (*tunnelClient)(nil)

func (t *tunnelClient) Name() string { return "tunnel" }

func (t *tunnelClient) Start(ctx context.Context) error {
	ctx, t.cancel = context.WithCancel(ctx)
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		t.follow(ctx)
	}()
	return nil
}

// Ready returns at once: the node runs whether or not a tunnel is open.
func (t *tunnelClient) Ready(context.Context) error { return nil }

func (t *tunnelClient) Stop() error {
	t.cancel()
	t.wg.Wait()
	return nil
}

// follow keeps one tunnel per listed server, checking the list every few
// seconds.
func (t *tunnelClient) follow(ctx context.Context) {
	open := map[string]context.CancelFunc{}
	defer func() {
		for _, cancel := range open {
			cancel()
		}
	}()
	for {
		servers := t.servers()
		for server, cancel := range open {
			if !slices.Contains(servers, server) {
				cancel()
				delete(open, server)
			}
		}
		for _, server := range servers {
			if _, ok := open[server]; ok {
				continue
			}
			serverCtx, cancel := context.WithCancel(ctx)
			open[server] = cancel
			t.wg.Add(1)
			go func() {
				defer t.wg.Done()
				t.keep(serverCtx, server)
			}()
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(tunnelRetry):
		}
	}
}

// keep holds the tunnel to one server, opening it again when it drops.
func (t *tunnelClient) keep(ctx context.Context, server string) {
	url := "wss://" + server + join.TunnelPath
	for ctx.Err() == nil {
		dialer, err := t.dialer()
		if err == nil {
			err = remotedialer.ConnectToProxy(ctx, url, nil, t.allow, dialer, nil)
		}
		if ctx.Err() != nil {
			return
		}
		t.log.V(1).Info("Tunnel to the server closed; opening it again", "server", server, "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(tunnelRetry):
		}
	}
}

// dialer connects with the node's client certificate, trusting the
// cluster's server CA.
func (t *tunnelClient) dialer() (*websocket.Dialer, error) {
	caPEM, err := os.ReadFile(t.caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("%s: no certificate", t.caFile)
	}
	cert, err := tls.LoadX509KeyPair(t.certFile, t.keyFile)
	if err != nil {
		return nil, err
	}
	return &websocket.Dialer{HandshakeTimeout: remotedialer.HandshakeTimeOut,
		TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}}, nil
}

// allow says which connections the server may ask this node for: TCP to the
// kubelet on the node's addresses or name, and TCP to a pod address.
func (t *tunnelClient) allow(proto, address string) bool {
	host, port, err := net.SplitHostPort(address)
	if proto != "tcp" || err != nil {
		return false
	}
	if host == t.nodeName || slices.Contains(t.nodeIPs, host) {
		return port == strconv.Itoa(KubeletPort) // the only port asked for on the node's own addresses
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && t.clusterCIDR.Contains(ip.Unmap())
}
