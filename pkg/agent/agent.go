// Package agent runs a Kubernetes node in kubling's process: containerd
// (a supervised child from the payload), the kubelet, the CNI
// configuration, flannel and kube-proxy.
//
// Both commands start a node the same way: NewNode checks the node's flags
// against the host, and Node.Components returns the parts in start order
// once the node has credentials. `kubling server` signs those itself for its
// own node (pkg/server); `kubling agent` gets them by joining, in Run below.
package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/kubling/kubling/pkg/agent/loadbalancer"
	"github.com/kubling/kubling/pkg/codepages"
	"github.com/kubling/kubling/pkg/component"
	"github.com/kubling/kubling/pkg/config"
	"github.com/kubling/kubling/pkg/hostcheck"
	"github.com/kubling/kubling/pkg/join"
	"github.com/kubling/kubling/pkg/token"
)

// LoadBalancerPort is where an agent's components reach the apiservers.
const LoadBalancerPort = 6444

// Run joins this machine to the cluster at c.Server and runs its node until
// ctx ends or a component fails; then it stops everything in reverse order.
func Run(ctx context.Context, c *config.Agent, log klog.Logger) (err error) {
	begin := time.Now()

	// 1. Check the flags and the host; nothing is written before this passes.
	server, tok, node, err := preflight(c)
	if err != nil {
		return err
	}
	lock, err := hostcheck.LockDir(c.DataDir)
	if err != nil {
		return err
	}
	defer lock.Close()

	// 2. Join: the CA (checked against the token), then certificates for
	// this node's own keys. While the server cannot be reached, retry; a
	// node that joined before starts with what it has.
	phase := time.Now()
	cluster, err := joinCluster(ctx, clock.RealClock{}, server, tok, node, log)
	if err != nil {
		return err
	}
	log.Info("Joined", "server", server.String(), "node", node.Name(), "duration", time.Since(phase).Round(time.Millisecond))

	// 3. The node, whose components reach the apiservers through the local
	// load balancer over every server the cluster lists.
	lbAddress := net.JoinHostPort("127.0.0.1", strconv.Itoa(LoadBalancerPort))
	lb := loadbalancer.New(lbAddress, append([]string{server.Host}, hostPorts(cluster.Servers)...), log)
	runtime, err := node.Runtime(log)
	if err != nil {
		return err
	}
	settings, err := config.ParseCluster(*cluster)
	if err != nil {
		return fmt.Errorf("the cluster's settings: %w", err)
	}
	parts, err := node.Components(Connection{APIServer: "https://" + lbAddress, Cluster: settings}, log)
	if err != nil {
		return err
	}
	parts = append(runtime, parts...)
	runner := component.NewRunner(log)
	defer func() {
		if stopErr := runner.Stop(); stopErr != nil {
			err = errors.Join(err, stopErr)
		}
	}()
	// The renewer joins again, for the same keys, before the certificates expire.
	renewer := newCertRenewer(node, server, tok, log)
	// The servers added or removed while running reach the load balancer.
	watch := &serverWatch{lb: lb, joined: []string{server.Host}, kubeconfig: node.layout.NodeKubeconfig(kubeProxyComponent), log: log}
	// A tunnel to every server, for the apiservers to reach this node
	// where they cannot dial it.
	tunnels := node.tunnel(lb.Servers, settings.ClusterCIDR, log)
	if err := runner.Start(ctx, readyTimeout, append(append([]component.Component{lb}, parts...), renewer, watch, tunnels)...); err != nil {
		return err
	}
	log.Info("kubling agent is ready", "node", node.Name(), "server", server.String(), "duration", time.Since(begin).Round(time.Millisecond))
	// Tell systemd (Type=notify), when it started us.
	_, _ = daemon.SdNotify(false, daemon.SdNotifyReady)

	// 4. Serve until asked to stop, or until a component dies; once start-up
	// is over, give back the executable's pages only it used.
	go codepages.ReleaseAfter(ctx, log, codepages.AfterReady)
	return component.Serve(ctx, log, parts)
}

// preflight checks the agent's flags and host: root, br_netfilter, free
// ports, a writable data dir that has not joined another cluster, and the
// node's own flags (NewNode).
func preflight(c *config.Agent) (*url.URL, token.Token, *Node, error) {
	server, err := join.ServerURL(c.Server)
	if err != nil {
		return nil, token.Token{}, nil, err
	}
	tok := c.ParsedToken() // checked by config.Agent.Validate
	if err := hostcheck.RequireRoot("agent"); err != nil {
		return nil, tok, nil, err
	}
	if err := hostcheck.Real.BrNetfilter(); err != nil {
		return nil, tok, nil, err
	}
	ports := append(Ports(), hostcheck.Port{Host: "127.0.0.1", Port: LoadBalancerPort, What: "the agent's apiserver load balancer"})
	if err := hostcheck.PortsFree(ports); err != nil {
		return nil, tok, nil, err
	}
	if err := hostcheck.Writable(c.DataDir); err != nil {
		return nil, tok, nil, fmt.Errorf("data dir %s is not writable: %w", c.DataDir, err)
	}
	if err := checkSameCluster(c.Layout(), tok); err != nil {
		return nil, tok, nil, err
	}
	node, err := NewNode(c.Node)
	if err != nil {
		return nil, tok, nil, err
	}
	return server, tok, node, nil
}
