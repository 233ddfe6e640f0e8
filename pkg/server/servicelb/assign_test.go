package servicelb

import (
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

var t0 = time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)

func lbService(name string, age int, ports ...int32) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", CreationTimestamp: metav1.NewTime(t0.Add(time.Duration(age) * time.Second))},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer},
	}
	for _, p := range ports {
		s.Spec.Ports = append(s.Spec.Ports, corev1.ServicePort{Port: p})
	}
	return s
}

func node(name string, ready bool, addrs ...string) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{}}}
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: status}}
	for i := 0; i+1 < len(addrs); i += 2 {
		n.Status.Addresses = append(n.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeAddressType(addrs[i]), Address: addrs[i+1]})
	}
	return n
}

func slice(service string, endpoints map[string]bool) *discoveryv1.EndpointSlice {
	es := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Name: service + "-x", Namespace: "ns", Labels: map[string]string{discoveryv1.LabelServiceName: service}}}
	for n, ready := range endpoints {
		es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{NodeName: &n, Conditions: discoveryv1.EndpointConditions{Ready: &ready}})
	}
	return es
}

func TestAssignGivesEveryReadyNodeExternalFirst(t *testing.T) {
	st := State{
		Services: []*corev1.Service{lbService("web", 0, 80)},
		Nodes: []*corev1.Node{
			node("b", true, "InternalIP", "10.0.0.2", "ExternalIP", "203.0.113.2"),
			node("a", true, "InternalIP", "10.0.0.1", "Hostname", "a"),
			node("down", false, "InternalIP", "10.0.0.3"),
		},
	}
	got := Assign(st)["ns/web"]
	if want := []string{"10.0.0.1", "203.0.113.2"}; got.Problem != nil || !slices.Equal(got.IPs, want) {
		t.Fatalf("got %+v, want %v", got, want)
	}
}

func TestAssignIgnoresOtherServices(t *testing.T) {
	cluster := lbService("plain", 0, 80)
	cluster.Spec.Type = corev1.ServiceTypeClusterIP
	class := lbService("metallb", 1, 80)
	other := "example.com/lb"
	class.Spec.LoadBalancerClass = &other
	got := Assign(State{Services: []*corev1.Service{cluster, class, lbService("web", 2, 80)}, Nodes: []*corev1.Node{node("a", true, "InternalIP", "10.0.0.1")}})
	if len(got) != 1 || got["ns/web"].Problem != nil {
		t.Fatalf("want only ns/web, unblocked (the others hold no port): %+v", got)
	}
}

func TestAssignOldestKeepsThePort(t *testing.T) {
	nodes := []*corev1.Node{node("a", true, "InternalIP", "10.0.0.1")}
	older, younger := lbService("older", 0, 80), lbService("younger", 5, 443, 80)
	// A third asks for 443 only: the younger one holds nothing, so it is free.
	third := lbService("third", 9, 443)
	got := Assign(State{Services: []*corev1.Service{younger, third, older}, Nodes: nodes})
	if got["ns/older"].Problem != nil || len(got["ns/older"].IPs) != 1 {
		t.Errorf("older: %+v", got["ns/older"])
	}
	p := got["ns/younger"].Problem
	if p == nil || p.Reason != "PortInUse" || !strings.Contains(p.Message, "ns/older") || !strings.Contains(p.Message, "ns/younger") || len(got["ns/younger"].IPs) != 0 {
		t.Errorf("younger: want PortInUse naming both and no address, got %+v", got["ns/younger"])
	}
	if got["ns/third"].Problem != nil || len(got["ns/third"].IPs) != 1 {
		t.Errorf("third: the blocked Service holds no port, want an address: %+v", got["ns/third"])
	}
	// Another protocol on the same number is another port.
	udp := lbService("dns", 7, 80)
	udp.Spec.Ports[0].Protocol = corev1.ProtocolUDP
	if got := Assign(State{Services: []*corev1.Service{older, udp}, Nodes: nodes}); got["ns/dns"].Problem != nil {
		t.Errorf("80/UDP beside 80/TCP: %+v", got["ns/dns"])
	}
}

func TestAssignRefusesTheNodesOwnPorts(t *testing.T) {
	got := Assign(State{Services: []*corev1.Service{lbService("api", 0, 6443)}, Nodes: []*corev1.Node{node("a", true, "InternalIP", "10.0.0.1")},
		Reserved: ReservedPorts(6443, 10250)})
	if p := got["ns/api"].Problem; p == nil || p.Reason != "PortReserved" || !strings.Contains(p.Message, "apiserver") {
		t.Fatalf("want PortReserved naming the apiserver, got %+v", got["ns/api"])
	}
}

func TestAssignLocalListsNodesWithReadyEndpoints(t *testing.T) {
	s := lbService("web", 0, 80)
	s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	nodes := []*corev1.Node{node("a", true, "InternalIP", "10.0.0.1"), node("b", true, "InternalIP", "10.0.0.2"), node("c", true, "InternalIP", "10.0.0.3")}
	got := Assign(State{Services: []*corev1.Service{s}, Nodes: nodes, Endpoints: []*discoveryv1.EndpointSlice{
		slice("web", map[string]bool{"b": true, "c": false}), slice("other", map[string]bool{"a": true})}})
	if want := []string{"10.0.0.2"}; !slices.Equal(got["ns/web"].IPs, want) {
		t.Fatalf("got %v, want %v (b only: c's endpoint is not ready, a runs another Service's)", got["ns/web"].IPs, want)
	}
}

func TestAssignEnableLabelAndExclusion(t *testing.T) {
	a, b, c := node("a", true, "InternalIP", "10.0.0.1"), node("b", true, "InternalIP", "10.0.0.2"), node("c", true, "InternalIP", "10.0.0.3")
	c.Labels[corev1.LabelNodeExcludeBalancers] = ""
	st := State{Services: []*corev1.Service{lbService("web", 0, 80)}, Nodes: []*corev1.Node{a, b, c}}
	if got := Assign(st)["ns/web"].IPs; !slices.Equal(got, []string{"10.0.0.1", "10.0.0.2"}) {
		t.Errorf("excluded node listed: %v", got)
	}
	b.Labels[EnableLabel] = "true"
	if got := Assign(st)["ns/web"].IPs; !slices.Equal(got, []string{"10.0.0.2"}) {
		t.Errorf("with one node labelled, want it alone: %v", got)
	}
}

func TestAssignKeepsTheServicesFamilies(t *testing.T) {
	s := lbService("web", 0, 80)
	s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol}
	n := node("a", true, "InternalIP", "10.0.0.1", "InternalIP", "fd00::1")
	if got := Assign(State{Services: []*corev1.Service{s}, Nodes: []*corev1.Node{n}})["ns/web"].IPs; !slices.Equal(got, []string{"fd00::1"}) {
		t.Fatalf("got %v", got)
	}
}
