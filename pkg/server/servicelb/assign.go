package servicelb

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// EnableLabel on nodes restricts ServiceLB to them: once any node carries
// it with "true", only those nodes answer for LoadBalancer Services.
const EnableLabel = "svccontroller.kubling.io/enablelb"

// Port is a port the nodes use themselves (the apiserver's, the kubelet's,
// flannel's): a LoadBalancer Service on it would capture the node's own
// traffic, so it gets no address.
type Port struct {
	Port     int32
	Protocol corev1.Protocol
	What     string
}

// Problem is why a Service gets no address; it becomes a Warning Event on
// the Service.
type Problem struct {
	Reason, Message string
}

// Result is what one Service gets: its ingress addresses, or a problem.
type Result struct {
	IPs     []string
	Problem *Problem
}

// State is what the assignment reads: every Service, Node and EndpointSlice.
type State struct {
	Services  []*corev1.Service
	Nodes     []*corev1.Node
	Endpoints []*discoveryv1.EndpointSlice
	Reserved  []Port
}

// Managed says the Service is ServiceLB's: type LoadBalancer, no
// loadBalancerClass (another controller's), not being deleted.
func Managed(s *corev1.Service) bool {
	return s.Spec.Type == corev1.ServiceTypeLoadBalancer && s.Spec.LoadBalancerClass == nil && s.DeletionTimestamp == nil
}

// Assign decides every managed Service's addresses. The oldest Service
// (then by namespace/name) holding a port and protocol keeps it; a younger
// one asking for a port already held, or for a node's own port, gets no
// address at all — kube-proxy answers every port of an ingress address, so
// a Service cannot be half-served — and a Problem naming the holder. A
// Service gets the address of each node that is Ready, not excluded
// (node.kubernetes.io/exclude-from-external-load-balancers), labelled
// EnableLabel=true when any node is, and, for externalTrafficPolicy Local,
// runs one of its ready endpoints: the node's ExternalIP where it has one,
// else its InternalIP, of the Service's IP families.
func Assign(st State) map[string]Result {
	services := slices.Clone(st.Services)
	slices.SortFunc(services, func(a, b *corev1.Service) int {
		if c := a.CreationTimestamp.Compare(b.CreationTimestamp.Time); c != 0 {
			return c
		}
		return cmp.Compare(key(a), key(b))
	})
	nodes := eligibleNodes(st.Nodes)
	held := map[Port]string{} // port/protocol (What empty) → holder's key
	results := map[string]Result{}
	for _, s := range services {
		if !Managed(s) {
			continue
		}
		if p := conflict(s, held, st.Reserved); p != nil {
			results[key(s)] = Result{Problem: p}
			continue
		}
		for _, p := range s.Spec.Ports {
			held[Port{Port: p.Port, Protocol: protocol(p)}] = key(s)
		}
		chosen := nodes
		if s.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal {
			local := endpointNodes(s, st.Endpoints)
			chosen = slices.DeleteFunc(slices.Clone(nodes), func(n *corev1.Node) bool { return !local[n.Name] })
		}
		results[key(s)] = Result{IPs: addresses(s, chosen)}
	}
	return results
}

// conflict is why the Service cannot have its ports, or nil.
func conflict(s *corev1.Service, held map[Port]string, reserved []Port) *Problem {
	for _, p := range s.Spec.Ports {
		proto := protocol(p)
		for _, r := range reserved {
			if r.Port == p.Port && r.Protocol == proto {
				return &Problem{Reason: "PortReserved", Message: fmt.Sprintf("port %d/%s is %s on every node: this LoadBalancer Service gets no address; choose another port", p.Port, proto, r.What)}
			}
		}
		if holder, ok := held[Port{Port: p.Port, Protocol: proto}]; ok {
			return &Problem{Reason: "PortInUse", Message: fmt.Sprintf("port %d/%s is already served by LoadBalancer Service %s: %s gets no address until that Service frees the port", p.Port, proto, holder, key(s))}
		}
	}
	return nil
}

func protocol(p corev1.ServicePort) corev1.Protocol {
	return cmp.Or(p.Protocol, corev1.ProtocolTCP)
}

// eligibleNodes are the Ready nodes ServiceLB may use, sorted by name.
func eligibleNodes(all []*corev1.Node) []*corev1.Node {
	labelled := slices.ContainsFunc(all, func(n *corev1.Node) bool { return n.Labels[EnableLabel] == "true" })
	var nodes []*corev1.Node
	for _, n := range all {
		if n.DeletionTimestamp != nil || !ready(n) {
			continue
		}
		if _, excluded := n.Labels[corev1.LabelNodeExcludeBalancers]; excluded {
			continue
		}
		if labelled && n.Labels[EnableLabel] != "true" {
			continue
		}
		nodes = append(nodes, n)
	}
	slices.SortFunc(nodes, func(a, b *corev1.Node) int { return cmp.Compare(a.Name, b.Name) })
	return nodes
}

func ready(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// endpointNodes are the nodes that run a ready endpoint of the Service.
func endpointNodes(s *corev1.Service, slices []*discoveryv1.EndpointSlice) map[string]bool {
	nodes := map[string]bool{}
	for _, es := range slices {
		if es.Namespace != s.Namespace || es.Labels[discoveryv1.LabelServiceName] != s.Name {
			continue
		}
		for _, e := range es.Endpoints {
			if e.NodeName != nil && (e.Conditions.Ready == nil || *e.Conditions.Ready) {
				nodes[*e.NodeName] = true
			}
		}
	}
	return nodes
}

// addresses are the nodes' ExternalIPs, or InternalIPs where a node has no
// ExternalIP, of the Service's families, sorted and without repeats.
func addresses(s *corev1.Service, nodes []*corev1.Node) []string {
	families := map[corev1.IPFamily]bool{}
	for _, f := range s.Spec.IPFamilies {
		families[f] = true
	}
	var ips []string
	for _, n := range nodes {
		for _, kind := range []corev1.NodeAddressType{corev1.NodeExternalIP, corev1.NodeInternalIP} {
			found := false
			for _, a := range n.Status.Addresses {
				ip, err := netip.ParseAddr(a.Address)
				if a.Type != kind || err != nil {
					continue
				}
				family := corev1.IPv4Protocol
				if ip.Unmap().Is6() {
					family = corev1.IPv6Protocol
				}
				if len(families) == 0 || families[family] {
					ips = append(ips, ip.Unmap().String())
					found = true
				}
			}
			if found {
				break
			}
		}
	}
	slices.Sort(ips)
	return slices.Compact(ips)
}

func key(s *corev1.Service) string { return s.Namespace + "/" + s.Name }
