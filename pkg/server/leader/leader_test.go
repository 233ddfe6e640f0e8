package leader

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/klog/v2"

	"github.com/kubling/kubling/pkg/component"
)

// events records what the fake components did, in order.
type events struct {
	mu   sync.Mutex
	list []string
}

func (e *events) add(s string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.list = append(e.list, s)
}

func (e *events) get() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.list)
}

// part is a gated component that records its lifecycle and, when it
// stops, who holds the Lease at that moment.
type part struct {
	name   string
	ev     *events
	client kubernetes.Interface
}

var _ component.Component = (*part)(nil)

func (p *part) Name() string { return p.name }
func (p *part) Start(context.Context) error {
	p.ev.add("start " + p.name)
	return nil
}
func (p *part) Ready(context.Context) error {
	p.ev.add("ready " + p.name)
	return nil
}
func (p *part) Stop() error {
	p.ev.add(fmt.Sprintf("stop %s (lease held by %q)", p.name, holder(p.client)))
	return nil
}

func holder(c kubernetes.Interface) string {
	l, err := c.CoordinationV1().Leases(LeaseNamespace).Get(context.Background(), LeaseName, metav1.GetOptions{})
	if err != nil || l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

func elected(identity string, client kubernetes.Interface, ev *events, names ...string) *Elected {
	var parts []component.Component
	for _, n := range names {
		parts = append(parts, &part{name: identity + "/" + n, ev: ev, client: client})
	}
	return &Elected{Identity: identity, Client: client, Components: parts, ReadyTimeout: 5 * time.Second, Log: klog.Background()}
}

// TestLeaderStartsInOrderAndStopsInReverseBeforeReleasing: the gated
// components start in order once the Lease is held, a second server only
// follows, and stopping stops them in reverse while the Lease is still
// held, then releases it.
func TestLeaderStartsInOrderAndStopsInReverseBeforeReleasing(t *testing.T) {
	client := fake.NewClientset()
	ev := &events{}
	first := elected("s1", client, ev, "scheduler", "controller-manager", "addons")
	if err := first.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := first.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	if !first.Leading() || holder(client) != "s1" {
		t.Fatalf("leading %v, lease held by %q", first.Leading(), holder(client))
	}
	want := []string{"start s1/scheduler", "ready s1/scheduler", "start s1/controller-manager", "ready s1/controller-manager", "start s1/addons", "ready s1/addons"}
	if got := ev.get(); !slices.Equal(got, want) {
		t.Fatalf("start order\n got %q\nwant %q", got, want)
	}

	second := elected("s2", client, ev, "scheduler")
	if err := second.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := second.Ready(ctx); err != nil {
		t.Fatalf("a follower is ready once it sees a leader: %v", err)
	}
	if second.Leading() || len(ev.get()) != len(want) {
		t.Fatalf("the follower started its components: %q", ev.get())
	}
	if err := second.Stop(); err != nil {
		t.Fatal(err)
	}

	if err := first.Stop(); err != nil {
		t.Fatal(err)
	}
	want = append(want, `stop s1/addons (lease held by "s1")`, `stop s1/controller-manager (lease held by "s1")`, `stop s1/scheduler (lease held by "s1")`)
	if got := ev.get(); !slices.Equal(got, want) {
		t.Fatalf("stop order\n got %q\nwant %q", got, want)
	}
	if h := holder(client); h != "" {
		t.Fatalf("lease still held by %q after Stop", h)
	}
	select {
	case <-first.Done():
		t.Fatalf("a clean stop reported an exit: %v", first.ExitErr())
	default:
	}
}
