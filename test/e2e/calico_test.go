//go:build e2e

package e2e

import (
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestCalico is issue 25's `--cni calico` as far as it runs here: Calico's
// images cannot be pulled on these machines and cannot be built from the
// served module (docs/networking.md), so the test checks what kubling does
// and a real apiserver accepts: the add-on's objects applied, Calico's
// resources served, no flannel and no kubling NetworkPolicy controller, a
// node that waits for Calico's CNI configuration rather than failing its
// start, and kubling's containerd running pods from a configuration and a
// plugin written where Calico's install-cni writes them.
func TestCalico(t *testing.T) {
	// The stand-in's bridge (below) goes last, once kubling-killall.sh
	// has stopped every pod: a running kubelet would make it again, and
	// its route over the cluster CIDR would stop the next server.
	t.Cleanup(func() { exec.Command("ip", "link", "del", "e2ecali0").Run() })
	s := newNodeServer(t)
	s.start("--cni", "calico")
	node := s.kubectl("get", "nodes", "-o", "jsonpath={.items[0].metadata.name}")

	eventually(t, time.Minute, "Calico's resources served", func() string {
		out, err := s.tryKubectl("get", "crd", "-o", `jsonpath={range .items[?(@.spec.group=="crd.projectcalico.org")]}{.status.conditions[?(@.type=="Established")].status}{"\n"}{end}`)
		if err != nil {
			return err.Error()
		}
		if n := strings.Count(out, "True"); n != 18 {
			return "established: " + strings.ReplaceAll(out, "\n", " ")
		}
		return ""
	})
	// The resources take Calico's objects (here a second pool, as a user
	// would add one).
	apply(t, s, `apiVersion: crd.projectcalico.org/v1
kind: IPPool
metadata: {name: e2e-pool}
spec: {cidr: 10.42.128.0/18, vxlanMode: Always, ipipMode: Never, natOutgoing: true}
`)
	if got := s.kubectl("get", "ippools.crd.projectcalico.org", "e2e-pool", "-o", "jsonpath={.spec.vxlanMode}"); got != "Always" {
		t.Errorf("IPPool stored vxlanMode %q", got)
	}

	// calico-node on the node, in kubling's CNI folders, on the cluster's
	// pod network.
	eventually(t, time.Minute, "a calico-node pod on the node", func() string {
		out, _ := s.tryKubectl("-n", "kube-system", "get", "pods", "-l", "k8s-app=calico-node", "-o", "jsonpath={.items[*].spec.nodeName}")
		if out != node {
			return "calico-node pods on " + out
		}
		return ""
	})
	confDir := filepath.Join(s.dataDir, "agent", "etc", "cni", "net.d")
	pluginDir := filepath.Join(s.dataDir, "agent", "cni-plugins")
	volumes := s.kubectl("-n", "kube-system", "get", "ds", "calico-node", "-o", `jsonpath={range .spec.template.spec.volumes[*]}{.hostPath.path}{"\n"}{end}`)
	for _, dir := range []string{confDir, pluginDir} {
		if !slices.Contains(strings.Split(volumes, "\n"), dir) {
			t.Errorf("calico-node does not mount %s:\n%s", dir, volumes)
		}
	}
	if got := s.kubectl("-n", "kube-system", "get", "ds", "calico-node", "-o", `jsonpath={.spec.template.spec.containers[0].env[?(@.name=="CALICO_IPV4POOL_CIDR")].value}`); got != "10.42.0.0/16" {
		t.Errorf("calico-node's pool %q, want the cluster CIDR", got)
	}

	// No flannel, no kubling pod network configuration, no kubling
	// NetworkPolicy rules: Calico's.
	if got := s.kubectl("get", "node", node, "-o", `jsonpath={.metadata.annotations.flannel\.alpha\.coreos\.com/backend-type}`); got != "" {
		t.Errorf("flannel ran: backend-type %q", got)
	}
	if err := exec.Command("ip", "link", "show", "flannel.1").Run(); err == nil {
		t.Error("a flannel.1 device with --cni calico")
	}
	if _, err := os.Stat(filepath.Join(confDir, "10-kubling.conflist")); err == nil {
		t.Error("kubling wrote its own CNI configuration with --cni calico")
	}
	if hasPolicyState(t, s.dataDir) {
		t.Error("kubling's NetworkPolicy controller ran with --cni calico")
	}
	// Without Calico's pods the node waits for a network, and says so.
	if got := s.kubectl("get", "node", node, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].message}`); !strings.Contains(got, "NetworkPluginNotReady") {
		t.Errorf("node Ready message %q, want the network plugin not ready", got)
	}

	// What calico-node's install-cni does, with a stand-in plugin (the
	// payload's bridge under another name, in the add-on plugin folder):
	// containerd picks it up, the node turns Ready, a pod gets an address
	// from it.
	bridges, _ := filepath.Glob(filepath.Join(s.dataDir, "data", "*", "bin", "bridge"))
	if len(bridges) != 1 {
		t.Fatalf("payload bridge plugin: %v", bridges)
	}
	copyFile(t, bridges[0], filepath.Join(pluginDir, "e2e-calico-stand-in"))
	if err := os.Chmod(filepath.Join(pluginDir, "e2e-calico-stand-in"), 0o755); err != nil {
		t.Fatal(err)
	}
	conf := `{"cniVersion": "1.0.0", "name": "k8s-pod-network", "plugins": [
  {"type": "e2e-calico-stand-in", "bridge": "e2ecali0", "isGateway": true, "ipMasq": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.42.77.0/24"}]], "dataDir": "` + filepath.Join(t.TempDir(), "ipam") + `"}}]}`
	if err := os.WriteFile(filepath.Join(confDir, "10-calico.conflist"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "node Ready on the add-on's CNI configuration", func() string {
		got := s.kubectl("get", "node", node, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
		if got != "True" {
			return "Ready=" + got
		}
		return ""
	})
	apply(t, s, `apiVersion: v1
kind: Pod
metadata: {name: on-calico, namespace: default}
spec:
  containers:
  - {name: c, image: kubling.test/busybox:1, imagePullPolicy: Never, command: ["sleep", "100000"]}
`)
	s.kubectl("wait", "--for=condition=Ready", "pod/on-calico", "--timeout=90s")
	ip, err := netip.ParseAddr(s.kubectl("get", "pod", "on-calico", "-o", "jsonpath={.status.podIP}"))
	if err != nil || !netip.MustParsePrefix("10.42.77.0/24").Contains(ip) {
		t.Errorf("pod address %v (%v): not from the add-on's CNI configuration", ip, err)
	}
}
