package servicelb

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
)

// A heartbeat (a new condition time) must not re-assign every Service;
// a change of readiness, address or label must.
func TestNodeViewIgnoresHeartbeats(t *testing.T) {
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "a", Labels: map[string]string{"x": "1"}},
		Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
			Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "10.0.0.1"}}}}
	beat := node.DeepCopy()
	beat.Status.Conditions[0].LastHeartbeatTime = metav1.Now()
	beat.ResourceVersion = "2"
	if nodeView(beat) != nodeView(node) {
		t.Error("a heartbeat changes the node's view")
	}
	for name, change := range map[string]func(*corev1.Node){
		"not ready": func(n *corev1.Node) { n.Status.Conditions[0].Status = corev1.ConditionFalse },
		"address":   func(n *corev1.Node) { n.Status.Addresses[0].Address = "10.0.0.2" },
		"label":     func(n *corev1.Node) { n.Labels[EnableLabel] = "true" },
	} {
		changed := node.DeepCopy()
		change(changed)
		if nodeView(changed) == nodeView(node) {
			t.Errorf("%s: not seen", name)
		}
	}
}

func TestOnlyLocalLoadBalancersEndpointsKick(t *testing.T) {
	indexer := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	for _, s := range []*corev1.Service{
		{ObjectMeta: metav1.ObjectMeta{Namespace: "d", Name: "local"}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyLocal}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "d", Name: "cluster"}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyCluster}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "d", Name: "plain"}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP}},
	} {
		if err := indexer.Add(s); err != nil {
			t.Fatal(err)
		}
	}
	c := &Controller{services: corelisters.NewServiceLister(indexer)}
	slice := func(svc string) *discoveryv1.EndpointSlice {
		return &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "d", Name: svc + "-x", Labels: map[string]string{discoveryv1.LabelServiceName: svc}}}
	}
	for svc, want := range map[string]bool{"local": true, "cluster": false, "plain": false, "gone": false} {
		if got := c.ofLocalLoadBalancer(slice(svc)); got != want {
			t.Errorf("slice of %s kicks: %v, want %v", svc, got, want)
		}
	}
	if !c.ofLocalLoadBalancer(cache.DeletedFinalStateUnknown{Obj: slice("local")}) {
		t.Error("a deleted slice of a Local LoadBalancer does not kick")
	}
}
