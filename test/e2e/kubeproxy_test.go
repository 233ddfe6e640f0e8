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

// TestKubeProxyNftables is issue 25's nftables check: with
// `--kube-proxy-arg proxy-mode=nftables` (the bundled nft where the host
// has none) a ClusterIP Service answers from a pod, its DNS name resolves,
// a NodePort answers from the host, NetworkPolicy still applies; killall
// removes kube-proxy's nftables tables.
func TestKubeProxyNftables(t *testing.T) {
	s := newNodeServer(t)
	s.start("--kube-proxy-arg", "proxy-mode=nftables")
	nft := nftCommand(s.dataDir)
	if out, err := exec.Command(nft, "list", "table", "ip", "kube-proxy").CombinedOutput(); err != nil {
		t.Fatalf("no nftables table of kube-proxy: %v: %s", err, out)
	}

	s.kubectl("create", "namespace", "e2e")
	apply(t, s, webApp)
	eventually(t, 3*time.Minute, "2 web pods ready and the client running", func() string {
		ready, _ := s.tryKubectl("get", "pods", "-n", "e2e", "-l", "app=web", "-o", `jsonpath={range .items[*]}{.status.containerStatuses[0].ready}{" "}{end}`)
		client, _ := s.tryKubectl("get", "pod", "client", "-n", "e2e", "-o", "jsonpath={.status.phase}")
		if ready != "true true" || client != "Running" {
			out, _ := s.tryKubectl("get", "pods", "-n", "e2e", "-o", "wide")
			return out
		}
		return ""
	})
	pods := strings.Fields(s.kubectl("get", "pods", "-n", "e2e", "-l", "app=web", "-o", "jsonpath={.items[*].metadata.name}"))
	clusterIP := s.kubectl("get", "svc", "web", "-n", "e2e", "-o", "jsonpath={.spec.clusterIP}")
	eventually(t, time.Minute, "ClusterIP answers from a pod", func() string {
		got, err := s.tryKubectl("exec", "-n", "e2e", "client", "--", "timeout", "5", "wget", "-q", "-O", "-", "http://"+clusterIP+"/")
		if err != nil || !contains(pods, got) {
			return fmt.Sprintf("%q %v", got, err)
		}
		return ""
	})
	eventually(t, 3*time.Minute, "the Service's DNS name resolves from a pod", func() string {
		got, err := s.tryKubectl("exec", "-n", "e2e", "client", "--", "timeout", "3", "nslookup", "web.e2e.svc.cluster.local", "10.43.0.10")
		if err != nil || !strings.Contains(got, clusterIP) {
			return fmt.Sprintf("%q %v", got, err)
		}
		return ""
	})
	node := s.kubectl("get", "nodes", "-o", "jsonpath={.items[0].metadata.name}")
	nodeIP := s.kubectl("get", "node", node, "-o", `jsonpath={.status.addresses[?(@.type=="InternalIP")].address}`)
	nodePort := s.kubectl("get", "svc", "web-nodeport", "-n", "e2e", "-o", "jsonpath={.spec.ports[0].nodePort}")
	eventually(t, time.Minute, "the NodePort answers from the host", func() string {
		got, err := httpGet("http://" + nodeIP + ":" + nodePort + "/")
		if err != nil || !contains(pods, got) {
			return fmt.Sprintf("%q %v", got, err)
		}
		return ""
	})
	// NetworkPolicy (iptables filter rules) still applies to Service traffic.
	apply(t, s, `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny, namespace: e2e}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Ingress]
`)
	eventually(t, 30*time.Second, "the ClusterIP blocked by a policy", func() string {
		if got, err := s.tryKubectl("exec", "-n", "e2e", "client", "--", "timeout", "2", "wget", "-q", "-O", "-", "http://"+clusterIP+"/"); err == nil {
			return "still answers: " + got
		}
		return ""
	})
	s.stop()
	killall(t, s.dataDir)
	if out, err := exec.Command(nft, "list", "table", "ip", "kube-proxy").CombinedOutput(); err == nil {
		t.Errorf("kubling-killall.sh left kube-proxy's nftables table:\n%s", out)
	}
}

// nftCommand is the host's nft, or the one kubling bundled.
func nftCommand(dataDir string) string {
	if p, err := exec.LookPath("nft"); err == nil {
		return p
	}
	return filepath.Join(dataDir, "agent", "bin", "nft")
}
