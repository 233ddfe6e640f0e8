package agent

import (
	"context"
	"net"
	"slices"
	"strconv"
	"sync/atomic"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	"github.com/kubling/kubling/pkg/agent/loadbalancer"
	"github.com/kubling/kubling/pkg/component"
	"github.com/kubling/kubling/pkg/kubeconfig"
)

// serverWatch keeps the agent's load balancer on the servers there are
// now: it watches the EndpointSlices of the `kubernetes` Service (each
// apiserver's address, kept by the apiservers' own leases) and gives the
// load balancer those, after the server the agent joined, which stays as a
// way back in should every other address go. The load balancer skips a
// server that does not answer at once, so a dead one costs one failed dial
// until its lease runs out and it leaves the list.
type serverWatch struct {
	lb         *loadbalancer.LoadBalancer
	joined     []string // host:port of the server joined, always kept
	kubeconfig string   // kube-proxy's: it may list and watch EndpointSlices
	log        klog.Logger

	factory informers.SharedInformerFactory
	stop    chan struct{}
	synced  atomic.Bool // the first list has been applied
}

var _ component.Component = (*serverWatch)(nil)

func (w *serverWatch) Name() string { return "server-watch" }

func (w *serverWatch) Start(context.Context) error {
	client, err := kubeconfig.NewClient(w.kubeconfig)
	if err != nil {
		return err
	}
	w.factory = informers.NewSharedInformerFactoryWithOptions(client, 0,
		informers.WithNamespace("default"),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = discoveryv1.LabelServiceName + "=kubernetes" }))
	informer := w.factory.Discovery().V1().EndpointSlices().Informer()
	sync := func(any) {
		var found []*discoveryv1.EndpointSlice
		for _, o := range informer.GetStore().List() {
			if s, ok := o.(*discoveryv1.EndpointSlice); ok {
				found = append(found, s)
			}
		}
		endpoints := apiserverAddresses(found)
		w.lb.SetServers(append(slices.Clone(w.joined), endpoints...))
		if !w.synced.Swap(true) {
			w.log.Info("Load balancer follows the kubernetes endpoints", "endpoints", endpoints, "servers", w.lb.Servers())
		}
	}
	if _, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    sync,
		UpdateFunc: func(_, o any) { sync(o) },
		DeleteFunc: sync,
	}); err != nil {
		return err
	}
	w.stop = make(chan struct{})
	w.factory.Start(w.stop)
	return nil
}

// Ready does not wait: until the first list, the servers the join named
// serve.
func (w *serverWatch) Ready(context.Context) error { return nil }

func (w *serverWatch) Stop() error {
	if w.stop != nil {
		close(w.stop)
		w.factory.Shutdown()
	}
	return nil
}

// apiserverAddresses are the host:port of the ready endpoints of the
// `kubernetes` Service's slices, sorted.
func apiserverAddresses(eps []*discoveryv1.EndpointSlice) []string {
	var out []string
	for _, s := range eps {
		port := 0
		for _, p := range s.Ports {
			if p.Port != nil && (p.Name == nil || *p.Name == "https") {
				port = int(*p.Port)
				break
			}
		}
		if port == 0 {
			continue
		}
		for _, e := range s.Endpoints {
			if e.Conditions.Ready != nil && !*e.Conditions.Ready {
				continue
			}
			for _, a := range e.Addresses {
				if hp := net.JoinHostPort(a, strconv.Itoa(port)); !slices.Contains(out, hp) {
					out = append(out, hp)
				}
			}
		}
	}
	slices.Sort(out)
	return out
}
