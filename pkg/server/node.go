package server

import (
	"context"
	"fmt"
	"net"

	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"

	"github.com/kubling/kubling/pkg/agent"
	"github.com/kubling/kubling/pkg/component"
	"github.com/kubling/kubling/pkg/datadir"
	"github.com/kubling/kubling/pkg/kubeconfig"
	"github.com/kubling/kubling/pkg/server/pki"
)

// nodeComponents prepares the server's own node: the server signs its
// certificates here (so no CSR waits for approval) into the node TLS folder,
// where an agent keeps those it got by joining; then pkg/agent builds the
// node exactly as it does for an agent. The server-side labeller follows.
func nodeComponents(node *agent.Node, p pki.PKI, l datadir.Layout, conn agent.Connection, log klog.Logger) ([]component.Component, error) {
	if _, err := p.EnsureNode(l.NodeTLS(), node.Name(), []net.IP{net.ParseIP(node.IP())}, nil); err != nil {
		return nil, fmt.Errorf("node certificates: %w", err)
	}
	parts, err := node.Components(conn, log)
	if err != nil {
		return nil, err
	}
	return append(parts, &roleLabeller{node: node.Name(), kubeconfig: l.AdminKubeconfig()}), nil
}

// runtimeStart is the server's node's container runtime (payload,
// containerd, images), started beside the apiserver: it needs no cluster,
// and the node's other components wait for it anyway.
type runtimeStart struct {
	runner *component.Runner
	cancel context.CancelFunc
	done   chan struct{}
	parts  []component.Component // set before done closes
	err    error
}

func startRuntime(ctx context.Context, node *agent.Node, log klog.Logger) *runtimeStart {
	ctx, cancel := context.WithCancel(ctx)
	r := &runtimeStart{runner: component.NewRunner(log), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		parts, err := node.Runtime(log)
		if err == nil {
			err = r.runner.Start(ctx, readyTimeout, parts...)
		}
		r.parts, r.err = parts, err
	}()
	return r
}

// wait returns the runtime's components once they are ready, or why they
// are not.
func (r *runtimeStart) wait() ([]component.Component, error) {
	<-r.done
	return r.parts, r.err
}

// stop ends a start still under way and stops what started.
func (r *runtimeStart) stop() error {
	r.cancel()
	<-r.done
	return r.runner.Stop()
}

// controlPlaneLabel marks the server's node. The NodeRestriction admission
// plugin forbids a kubelet to set node-role labels on itself, so the server
// applies it.
const controlPlaneLabel = "node-role.kubernetes.io/control-plane"

// roleLabeller labels the server's node once it has registered.
type roleLabeller struct {
	node, kubeconfig string
	client           kubernetes.Interface
}

var _ component.Component = (*roleLabeller)(nil)

func (r *roleLabeller) Name() string { return "node-labels" }

func (r *roleLabeller) Start(context.Context) error {
	var err error
	r.client, err = kubeconfig.NewClient(r.kubeconfig)
	return err
}

func (r *roleLabeller) Ready(ctx context.Context) error {
	return agent.LabelNode(ctx, r.client, r.node, map[string]any{controlPlaneLabel: "true"})
}

func (r *roleLabeller) Stop() error { return nil }
