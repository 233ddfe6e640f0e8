//go:build e2e

package e2e

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// policyPods are a web server and two clients that differ by one label.
const policyPods = `apiVersion: v1
kind: Pod
metadata: {name: web, namespace: np, labels: {app: web}}
spec:
  containers:
  - name: web
    image: kubling.test/busybox:1
    imagePullPolicy: Never
    command: ["sh", "-c", "mkdir -p /www && echo web > /www/index.html && exec httpd -f -p 8080 -h /www"]
    ports: [{name: http, containerPort: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: client-a, namespace: np, labels: {role: a}}
spec:
  containers:
  - {name: c, image: kubling.test/busybox:1, imagePullPolicy: Never, command: ["sleep", "100000"]}
---
apiVersion: v1
kind: Pod
metadata: {name: client-b, namespace: np, labels: {role: b}}
spec:
  containers:
  - {name: c, image: kubling.test/busybox:1, imagePullPolicy: Never, command: ["sleep", "100000"]}
`

const denyIngress = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-ingress, namespace: np}
spec:
  podSelector: {}
  policyTypes: [Ingress]
`

// allowA lets role=a reach the web pod's named port.
const allowA = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-a, namespace: np}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from: [{podSelector: {matchLabels: {role: a}}}]
    ports: [{port: http}]
`

// allowPodsExcept lets the pod network in, except one address (%s).
const allowPodsExcept = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-pods-except, namespace: np}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from: [{ipBlock: {cidr: 10.42.0.0/16, except: [%s/32]}}]
    ports: [{protocol: TCP, port: 8000, endPort: 8100}]
`

const denyEgressB = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-egress-b, namespace: np}
spec:
  podSelector: {matchLabels: {role: b}}
  policyTypes: [Egress]
`

const allowDNSB = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-dns-b, namespace: np}
spec:
  podSelector: {matchLabels: {role: b}}
  policyTypes: [Egress]
  egress:
  - ports: [{protocol: UDP, port: 53}, {protocol: TCP, port: 53}]
`

// TestNetworkPolicy is issue 25's single-node test: NetworkPolicy is
// enforced by the node's controller — default deny, a pod selector on a
// named port, an ipBlock with except and a port range, egress deny and an
// allowance for DNS — each within seconds; deleting the policies lets
// traffic through again; --disable-network-policy removes the rules;
// killall leaves no chain or ipset behind.
func TestNetworkPolicy(t *testing.T) {
	s := newNodeServer(t)
	s.start()
	if !strings.Contains(s.out.String(), "NetworkPolicy controller started") {
		t.Errorf("no NetworkPolicy controller in the server's log")
	}

	// The controller's credential reads what it needs and nothing more.
	npKubeconfig := filepath.Join(s.dataDir, "agent", "network-policy.kubeconfig")
	for check, want := range map[string]string{
		"list pods -A": "yes", "watch networkpolicies -A": "yes", "list namespaces": "yes", "get nodes": "yes",
		"get secrets -A": "no", "create pods -n default": "no", "patch nodes": "no", "list services -A": "no",
	} {
		got, _ := s.tryKubectl(append([]string{"--kubeconfig", npKubeconfig, "auth", "can-i"}, strings.Fields(check)...)...)
		// The answer, then any warning kubectl adds on stderr.
		if answer, _, _ := strings.Cut(strings.TrimSpace(got), "\n"); answer != want {
			t.Errorf("network-policy credential: can-i %s = %q, want %s", check, got, want)
		}
	}

	s.kubectl("create", "namespace", "np")
	apply(t, s, policyPods)
	eventually(t, 3*time.Minute, "the web pod and the clients running", func() string {
		got, _ := s.tryKubectl("get", "pods", "-n", "np", "-o", `jsonpath={range .items[*]}{.status.phase}{" "}{end}`)
		if got != "Running Running Running" {
			out, _ := s.tryKubectl("get", "pods", "-n", "np", "-o", "wide")
			return out
		}
		return ""
	})
	webIP := s.kubectl("get", "pod", "web", "-n", "np", "-o", "jsonpath={.status.podIP}")
	aIP := s.kubectl("get", "pod", "client-a", "-n", "np", "-o", "jsonpath={.status.podIP}")
	reaches := func(client string) bool {
		got, err := s.tryKubectl("exec", "-n", "np", client, "--", "timeout", "2", "wget", "-q", "-O", "-", "http://"+webIP+":8080/")
		return err == nil && got == "web"
	}
	// expect waits until exactly the clients in want reach the web pod and
	// says how long it took.
	expect := func(what string, want map[string]bool) {
		t.Helper()
		begin := time.Now()
		if soon(t, 30*time.Second, what, func() string {
			var wrong []string
			for _, c := range []string{"client-a", "client-b"} {
				if got := reaches(c); got != want[c] {
					wrong = append(wrong, fmt.Sprintf("%s reaches=%v", c, got))
				}
			}
			return strings.Join(wrong, ", ")
		}) {
			t.Logf("%s: after %s", what, time.Since(begin).Round(100*time.Millisecond))
		}
	}
	expect("no policy: both clients reach the web pod", map[string]bool{"client-a": true, "client-b": true})

	apply(t, s, denyIngress)
	expect("default-deny ingress: neither reaches", map[string]bool{})
	apply(t, s, allowA)
	expect("allow role=a on the named port: only client-a", map[string]bool{"client-a": true})
	s.kubectl("delete", "networkpolicy", "-n", "np", "allow-a")
	expect("allow-a deleted: neither reaches", map[string]bool{})
	// An ipBlock of the pod network except client-a, on a port range: the
	// range holds 8080, so client-b only.
	apply(t, s, fmt.Sprintf(allowPodsExcept, aIP))
	expect("ipBlock except client-a, ports 8000-8100: only client-b", map[string]bool{"client-b": true})
	s.kubectl("delete", "networkpolicy", "-n", "np", "--all")
	expect("policies deleted: both reach again", map[string]bool{"client-a": true, "client-b": true})

	// Egress: a client denied all egress cannot resolve names until DNS
	// is allowed.
	eventually(t, 3*time.Minute, "CoreDNS ready", func() string {
		if got, _ := s.tryKubectl("get", "deployment", "coredns", "-n", "kube-system", "-o", "jsonpath={.status.readyReplicas}"); got != "1" {
			return "readyReplicas " + got
		}
		return ""
	})
	resolves := func() string {
		got, err := s.tryKubectl("exec", "-n", "np", "client-b", "--", "timeout", "3", "nslookup", "kubernetes.default.svc.cluster.local", "10.43.0.10")
		if err != nil || !strings.Contains(got, "10.43.0.1") {
			return fmt.Sprintf("%q %v", got, err)
		}
		return ""
	}
	eventually(t, time.Minute, "client-b resolves a name", resolves)
	apply(t, s, denyEgressB)
	eventually(t, 30*time.Second, "egress denied: client-b cannot resolve", func() string {
		if resolves() == "" {
			return "it still resolves"
		}
		return ""
	})
	expect("egress denied: client-b cannot reach the web pod either", map[string]bool{"client-a": true})
	apply(t, s, allowDNSB)
	eventually(t, 30*time.Second, "DNS allowed: client-b resolves again", resolves)
	expect("DNS allowed: client-b still cannot reach the web pod", map[string]bool{"client-a": true})

	// A restart with --disable-network-policy takes every rule away,
	// though the policies are still there.
	apply(t, s, denyIngress)
	expect("default-deny ingress again: neither reaches", map[string]bool{})
	if !hasPolicyState(t, s.dataDir) {
		t.Error("no KUBE-ROUTER chain or KUBE-SRC/KUBE-DST ipset while policies apply")
	}
	s.stop()
	s.start("--disable-network-policy")
	if strings.Contains(s.out.String(), "NetworkPolicy controller started") {
		t.Error("the NetworkPolicy controller started with --disable-network-policy")
	}
	if !strings.Contains(s.out.String(), "removed the rules an earlier run left") {
		t.Error("no line about the rules removed at start")
	}
	if hasPolicyState(t, s.dataDir) {
		t.Error("NetworkPolicy rules or ipsets left with --disable-network-policy")
	}
	expect("--disable-network-policy: both reach despite deny-ingress", map[string]bool{"client-a": true, "client-b": true})
	s.stop()

	// On again, with the apiserver's node ports narrowed: the controller
	// leaves that range to kube-proxy. Then killall: nothing of the
	// controller's is left.
	s.start("--kube-apiserver-arg", "service-node-port-range=30000-31999")
	expect("NetworkPolicy on again: neither reaches", map[string]bool{})
	if out, _ := exec.Command("iptables-save", "-t", "filter").CombinedOutput(); !strings.Contains(string(out), "--dports 30000:31999") {
		t.Errorf("the NetworkPolicy rules do not use the apiserver's node-port range 30000-31999")
	}
	s.stop()
	killall(t, s.dataDir)
	if hasPolicyState(t, s.dataDir) {
		t.Error("kubling-killall.sh left NetworkPolicy chains or ipsets")
	}
}

// hasPolicyState says whether the filter table holds a chain of the
// NetworkPolicy controller or the kernel an ipset of it (read with the
// host's ipset or the one kubling bundled).
func hasPolicyState(t *testing.T, dataDir string) bool {
	t.Helper()
	out, err := exec.Command("iptables-save", "-t", "filter").CombinedOutput()
	if err != nil {
		t.Fatalf("iptables-save: %v: %s", err, out)
	}
	chains := strings.Contains(string(out), ":KUBE-ROUTER-") || strings.Contains(string(out), ":KUBE-NWPLCY-")
	ipset := "ipset"
	if _, err := exec.LookPath(ipset); err != nil {
		ipset = filepath.Join(dataDir, "agent", "bin", "ipset")
	}
	sets, err := exec.Command(ipset, "list", "-n").CombinedOutput()
	if err != nil {
		t.Fatalf("%s list -n: %v: %s", ipset, err, sets)
	}
	return chains || strings.Contains(string(sets), "KUBE-SRC-") || strings.Contains(string(sets), "KUBE-DST-")
}
