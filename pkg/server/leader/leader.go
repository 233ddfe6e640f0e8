// Package leader runs the parts of the control plane that must run once per
// cluster (kube-scheduler, kube-controller-manager, kubling's controllers)
// only on the server that holds the cluster's kubling Lease.
//
// One Lease for all of them, rather than upstream's own election in each
// component: upstream's scheduler and controller-manager end the whole
// process when they stop leading (even on a clean stop), which would cut
// short the rest of kubling's orderly stop. Here the gated components stop
// in reverse order before the Lease is released; a server that loses the
// Lease while running exits with an error, so its supervisor restarts it as
// a follower.
package leader

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/klog/v2"

	"github.com/kubling/kubling/pkg/component"
)

// Lease is where the leader is recorded: kube-system/kubling-control-plane.
const (
	LeaseNamespace = "kube-system"
	LeaseName      = "kubling-control-plane"
)

// Timing, as upstream's defaults: a dead leader is replaced within
// LeaseDuration + RetryPeriod.
const (
	LeaseDuration = 15 * time.Second
	RenewDeadline = 10 * time.Second
	RetryPeriod   = 2 * time.Second
)

// ErrLost reports a leader that could not renew its Lease in time.
var ErrLost = errors.New("lost the control-plane lease (another server may lead now); exiting so the server restarts as a follower")

// Elected is a component that starts Components, in order, while this
// server leads, and stops them before it lets the Lease go.
type Elected struct {
	// Identity names this server in the Lease; its node name, stable across
	// restarts, so a restarted leader takes its Lease back at once.
	Identity   string
	Client     kubernetes.Interface
	Components []component.Component
	// ReadyTimeout bounds each gated component's Ready.
	ReadyTimeout time.Duration
	Log          klog.Logger

	cancel context.CancelFunc
	// stopCtx ends when Stop begins, cutting short a start in progress.
	stopCtx    context.Context
	stopSignal context.CancelFunc
	elector    *leaderelection.LeaderElector
	runner     *component.Runner

	mu       sync.Mutex
	leading  bool // the gated components were started
	stopping bool
	err      error
	started  chan struct{} // closed once the gated components are ready
	done     chan struct{} // closed when this component ends on its own
	ended    chan struct{} // closed when the elector has returned
	endOnce  sync.Once
}

var _ component.Exiter = (*Elected)(nil)

func (e *Elected) Name() string { return "leader-election" }

func (e *Elected) Start(context.Context) error {
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: LeaseNamespace, Name: LeaseName},
		Client:     e.Client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: e.Identity},
	}
	e.runner = component.NewRunner(e.Log)
	e.stopCtx, e.stopSignal = context.WithCancel(context.Background())
	e.started, e.done, e.ended = make(chan struct{}), make(chan struct{}), make(chan struct{})
	elector, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            lock,
		Name:            LeaseName,
		LeaseDuration:   LeaseDuration,
		RenewDeadline:   RenewDeadline,
		RetryPeriod:     RetryPeriod,
		ReleaseOnCancel: true,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: e.lead,
			OnStoppedLeading: func() {},
			OnNewLeader: func(identity string) {
				if identity != e.Identity {
					e.Log.Info("Control plane led by another server", "leader", identity)
				}
			},
		},
	})
	if err != nil {
		return fmt.Errorf("leader election: %w", err)
	}
	e.elector = elector
	// The election lives until Stop, not until the start-up context ends.
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	go func() {
		defer close(e.ended)
		elector.Run(ctx)
	}()
	return nil
}

// lead runs while this server holds the Lease: it starts the gated
// components, then watches them and the Lease.
func (e *Elected) lead(ctx context.Context) {
	e.mu.Lock()
	if e.stopping {
		e.mu.Unlock()
		return
	}
	e.leading = true
	e.Log.Info("Leading the control plane", "lease", LeaseNamespace+"/"+LeaseName, "identity", e.Identity)
	startCtx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(e.stopCtx, cancel)
	err := e.runner.Start(startCtx, e.ReadyTimeout, e.Components...)
	stop()
	e.mu.Unlock()
	if err != nil {
		e.end(err)
		return
	}
	close(e.started)
	select {
	case err := <-component.FirstExit(e.Components):
		e.end(err)
	case <-ctx.Done():
		e.mu.Lock()
		stopping := e.stopping
		e.mu.Unlock()
		if !stopping {
			e.end(ErrLost)
		}
	}
}

// end records why the component ended on its own.
func (e *Elected) end(err error) {
	e.endOnce.Do(func() {
		e.err = err
		close(e.done)
	})
}

// Ready waits until this server leads with its gated components ready, or
// another server is seen leading.
func (e *Elected) Ready(ctx context.Context) error {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-e.started:
			return nil
		case <-e.done:
			return e.err
		case <-ctx.Done():
			return fmt.Errorf("no control-plane leader yet: %w", ctx.Err())
		case <-tick.C:
			if leader := e.elector.GetLeader(); leader != "" && leader != e.Identity {
				return nil
			}
		}
	}
}

// Leading says whether this server runs the gated components now.
func (e *Elected) Leading() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.leading
}

func (e *Elected) Done() <-chan struct{} { return e.done }

func (e *Elected) ExitErr() error { return e.err }

// Stop stops the gated components (in reverse) while the Lease is still
// held, then releases the Lease so another server takes over at once.
func (e *Elected) Stop() error {
	e.stopSignal()
	e.mu.Lock() // waits for a start in progress
	e.stopping = true
	err := e.runner.Stop()
	e.mu.Unlock()
	e.cancel()
	select {
	case <-e.ended:
	case <-time.After(RenewDeadline):
		e.Log.Info("Control-plane lease not released in time; it expires on its own", "after", LeaseDuration)
	}
	return err
}
