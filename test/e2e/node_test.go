//go:build e2e

package e2e

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kubling/kubling/pkg/datadir"
)

// busyboxImage is built by the Makefile from Debian's busybox-static. (Its
// wget crashes with -T, so timeouts use the timeout applet.)
const busyboxImage = "kubling.test/busybox:1"

const webApp = `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: e2e}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: kubling.test/busybox:1
        imagePullPolicy: Never
        command: ["sh", "-c", "mkdir -p /www && hostname > /www/index.html && echo hello-from-kubling && exec httpd -f -p 8080 -h /www"]
        ports: [{containerPort: 8080}]
        readinessProbe: {httpGet: {path: /, port: 8080}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: e2e}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: web-nodeport, namespace: e2e}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: e2e}
spec:
  containers:
  - name: client
    image: kubling.test/busybox:1
    imagePullPolicy: Never
    command: ["sleep", "100000"]
`

// TestNode is issue 3's end-to-end test: `kubling server` is also a Ready
// node that runs real pods from an airgap image, with logs, exec, Services
// and NodePorts, that survive a restart; killall leaves nothing behind.
func TestNode(t *testing.T) {
	s := newNodeServer(t)
	// A KUBLING_* variable (as an env file's KUBLING_TOKEN) stays in
	// kubling: containerd and the shims do not get it.
	t.Setenv("KUBLING_E2E_SECRET", "not-for-children")
	s.start("--kubelet-arg", "max-pods=50", "--node-label", "kubling.test/role=e2e")

	node := s.kubectl("get", "nodes", "-o", "jsonpath={.items[0].metadata.name}")
	if got := s.kubectl("get", "node", node, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`); got != "True" {
		t.Fatalf("node %s Ready=%q at the ready line", node, got)
	}
	if got := s.kubectl("get", "node", node, "-o", `jsonpath={.metadata.labels.node-role\.kubernetes\.io/control-plane}`); got != "true" {
		t.Errorf("control-plane label %q", got)
	}
	// NVIDIA: the RuntimeClass exists, and the device plugin runs nowhere on
	// a cluster without GPUs (its DaemonSet wants nvidia.com/gpu.present).
	soon(t, time.Minute, "RuntimeClass nvidia", func() string {
		if got, _ := s.tryKubectl("get", "runtimeclass", "nvidia", "-o", "jsonpath={.handler}"); got != "nvidia" {
			return fmt.Sprintf("RuntimeClass nvidia handler %q", got)
		}
		return ""
	})
	if got := s.kubectl("get", "node", node, "-o", `jsonpath={.metadata.labels.nvidia\.com/gpu\.present}`); got != "" {
		t.Errorf("a node without GPU is labelled nvidia.com/gpu.present=%q", got)
	}
	eventually(t, time.Minute, "the device plugin DaemonSet observed", func() string {
		got, _ := s.tryKubectl("get", "ds", "-n", "kube-system", "nvidia-device-plugin", "-o", "jsonpath={.status.observedGeneration} {.status.desiredNumberScheduled}")
		if got != "1 0" {
			return "generation and desired pods: " + got
		}
		return ""
	})
	// NFS support shows as a node condition; these hosts have no NFS client.
	nfs := s.kubectl("get", "node", node, "-o", `jsonpath={.status.conditions[?(@.type=="NFSUnavailable")].status} {.status.conditions[?(@.type=="NFSUnavailable")].reason}`)
	if kernelHasNFS() {
		if !strings.HasPrefix(nfs, "False") && !strings.HasPrefix(nfs, "True MountHelperMissing") {
			t.Errorf("NFSUnavailable condition on a host with NFS: %q", nfs)
		}
	} else if nfs != "True NFSClientMissing" {
		t.Errorf("NFSUnavailable condition on a host without NFS: %q", nfs)
	}
	if got := s.kubectl("get", "node", node, "-o", "jsonpath={.status.capacity.pods}"); got != "50" {
		t.Errorf("--kubelet-arg max-pods=50 not applied: capacity.pods=%q", got)
	}
	if got := s.kubectl("get", "node", node, "-o", `jsonpath={.metadata.labels.kubling\.test/role}`); got != "e2e" {
		t.Errorf("--node-label not applied: %q", got)
	}
	// flannel (VXLAN) runs in-process and has announced the node.
	if got := s.kubectl("get", "node", node, "-o", `jsonpath={.metadata.annotations.flannel\.alpha\.coreos\.com/backend-type}`); got != "vxlan" {
		t.Errorf("flannel backend-type annotation %q", got)
	}
	if err := exec.Command("ip", "link", "show", "flannel.1").Run(); err != nil {
		t.Errorf("no flannel.1 VXLAN device: %v", err)
	}
	nodeIP := s.kubectl("get", "node", node, "-o", `jsonpath={.status.addresses[?(@.type=="InternalIP")].address}`)
	checkNodeIdentity(t, s, node)

	s.kubectl("create", "namespace", "e2e")
	apply(t, s, webApp)
	waitReady := func() {
		eventually(t, 3*time.Minute, "2 web pods ready and the client running", func() string {
			ready, _ := s.tryKubectl("get", "pods", "-n", "e2e", "-l", "app=web", "-o", `jsonpath={range .items[*]}{.status.containerStatuses[0].ready}{" "}{end}`)
			client, _ := s.tryKubectl("get", "pod", "client", "-n", "e2e", "-o", "jsonpath={.status.phase}")
			if ready != "true true" || client != "Running" {
				out, _ := s.tryKubectl("get", "pods", "-n", "e2e", "-o", "wide")
				return out
			}
			return ""
		})
	}
	waitReady()
	pods := strings.Fields(s.kubectl("get", "pods", "-n", "e2e", "-l", "app=web", "-o", "jsonpath={.items[*].metadata.name}"))
	podIPs := strings.Fields(s.kubectl("get", "pods", "-n", "e2e", "-l", "app=web", "-o", "jsonpath={.items[*].status.podIP}"))

	// kubectl logs and exec go through the kubelet's server-signed serving certificate.
	if logs := s.kubectl("logs", "-n", "e2e", pods[0]); !strings.Contains(logs, "hello-from-kubling") {
		t.Errorf("kubectl logs: %q", logs)
	}
	if got := s.kubectl("exec", "-n", "e2e", pods[0], "--", "cat", "/www/index.html"); got != pods[0] {
		t.Errorf("kubectl exec: %q, want %q", got, pods[0])
	}
	if csrs := s.kubectl("get", "csr", "-o", "name"); csrs != "" {
		t.Errorf("CSRs exist (none should be needed): %s", csrs)
	}

	// Pod to pod, and a ClusterIP Service, from another pod.
	for _, ip := range podIPs {
		if got := s.kubectl("exec", "-n", "e2e", "client", "--", "timeout", "5", "wget", "-q", "-O", "-", "http://"+ip+":8080/"); !contains(pods, got) {
			t.Errorf("pod-to-pod %s answered %q", ip, got)
		}
	}
	clusterIP := s.kubectl("get", "svc", "web", "-n", "e2e", "-o", "jsonpath={.spec.clusterIP}")
	eventually(t, time.Minute, "ClusterIP answers from a pod", func() string {
		got, err := s.tryKubectl("exec", "-n", "e2e", "client", "--", "timeout", "5", "wget", "-q", "-O", "-", "http://"+clusterIP+"/")
		if err != nil || !contains(pods, got) {
			return fmt.Sprintf("%q %v", got, err)
		}
		return ""
	})
	// CoreDNS is deployed and Ready, and names the Service.
	eventually(t, 3*time.Minute, "CoreDNS ready", func() string {
		got, _ := s.tryKubectl("get", "deployment", "coredns", "-n", "kube-system", "-o", "jsonpath={.status.readyReplicas}")
		if got != "1" {
			out, _ := s.tryKubectl("get", "pods", "-n", "kube-system", "-o", "wide")
			return out
		}
		return ""
	})
	eventually(t, time.Minute, "the Service's DNS name resolves from a pod", func() string {
		got, err := s.tryKubectl("exec", "-n", "e2e", "client", "--", "nslookup", "web.e2e.svc.cluster.local", "10.43.0.10")
		if err != nil || !strings.Contains(got, clusterIP) {
			return fmt.Sprintf("%q %v", got, err)
		}
		return ""
	})

	// A NodePort answers from the host.
	nodePort := s.kubectl("get", "svc", "web-nodeport", "-n", "e2e", "-o", "jsonpath={.spec.ports[0].nodePort}")
	eventually(t, time.Minute, "NodePort answers from the host", func() string {
		got, err := httpGet("http://" + nodeIP + ":" + nodePort + "/")
		if err != nil || !contains(pods, got) {
			return fmt.Sprintf("%q %v", got, err)
		}
		return ""
	})

	// crictl and ctr talk to kubling's containerd without flags.
	if out := s.tool("crictl", "ps", "-q"); len(strings.Fields(out)) < 3 {
		t.Errorf("crictl ps: %q", out)
	}
	if out := s.tool("ctr", "images", "ls", "-q"); !strings.Contains(out, "registry.k8s.io/pause:3.10.2") || !strings.Contains(out, busyboxImage) {
		t.Errorf("ctr images ls: %q", out)
	}

	// The payload's images keep no layer in the content store once unpacked
	// (they are stored uncompressed in the payload), and a start finds them
	// imported: a label set by hand would be replaced by a new import.
	blobs := strings.Fields(s.tool("ctr", "content", "ls", "-q"))
	for _, ref := range []string{"registry.k8s.io/pause:3.10.2", bundledImage(t, s, "localhost/kubling/coredns:")} {
		for _, layer := range imageLayers(t, s, ref) {
			if slices.Contains(blobs, layer) {
				t.Errorf("%s: layer %s kept in the content store", ref, layer)
			}
		}
	}
	if !slices.Contains(blobs, imageLayers(t, s, busyboxImage)[0]) {
		t.Errorf("the layer of a pulled image is not listed: %q", blobs)
	}
	s.tool("ctr", "images", "label", "registry.k8s.io/pause:3.10.2", "kubling.test/mark=kept")

	for _, p := range processesUnder(s.dataDir) {
		pid, exe, _ := strings.Cut(p, ":")
		if environ, err := os.ReadFile("/proc/" + pid + "/environ"); err == nil && bytes.Contains(environ, []byte("KUBLING_")) {
			t.Errorf("%s (pid %s) was given kubling's KUBLING_* variables", filepath.Base(exe), pid)
		}
	}

	// containerd is restarted when it dies; pods keep running meanwhile.
	old := containerdPID(t, s.dataDir)
	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "containerd restarted", func() string {
		if pid := containerdPID(t, s.dataDir); pid == 0 || pid == old {
			return fmt.Sprintf("pid %d", pid)
		}
		cmd := exec.Command(bin, "crictl", "ps", "-q")
		cmd.Env = append(os.Environ(), "KUBLING_DATA_DIR="+s.dataDir)
		if out, err := cmd.Output(); err != nil || len(strings.Fields(string(out))) < 3 {
			return fmt.Sprintf("crictl ps: %q %v", out, err)
		}
		return ""
	})

	// Restart: the pods run again and serve.
	s.stop()
	s.start()
	waitReady()
	eventually(t, time.Minute, "ClusterIP answers after a restart", func() string {
		got, err := s.tryKubectl("exec", "-n", "e2e", "client", "--", "timeout", "5", "wget", "-q", "-O", "-", "http://"+clusterIP+"/")
		if err != nil || got == "" {
			return fmt.Sprintf("%q %v", got, err)
		}
		return ""
	})
	if out := s.tool("ctr", "images", "ls", "name==registry.k8s.io/pause:3.10.2"); !strings.Contains(out, "kubling.test/mark=kept") {
		t.Errorf("the pause image was imported again at restart (its labels were replaced): %s", out)
	}
	s.stop()

	// killall leaves no process, mount, interface or rule of kubling's.
	killall(t, s.dataDir)
	if left := mountsUnder(s.dataDir, datadir.New(s.dataDir).RunDir()); len(left) > 0 {
		t.Errorf("mounts left after killall:\n%s", strings.Join(left, "\n"))
	}
	for _, dev := range []string{"cni0", "flannel.1"} {
		if err := exec.Command("ip", "link", "show", dev).Run(); err == nil {
			t.Errorf("%s left after killall", dev)
		}
	}
	if out, _ := exec.Command("sh", "-c", "iptables-save | grep -c -E 'KUBE-|CNI-|FLANNEL-'").Output(); strings.TrimSpace(string(out)) != "0" {
		t.Errorf("iptables rules left after killall: %s", out)
	}
	if left := processesUnder(s.dataDir); len(left) > 0 {
		t.Errorf("processes left after killall: %v", left)
	}
}

// ghostNode is a Node no kubelet runs, tainted so nothing lands on it.
const ghostNode = `apiVersion: v1
kind: Node
metadata:
  name: e2e-ghost
spec:
  unschedulable: true
  taints: [{key: kubling.test/ghost, effect: NoExecute}]
---
apiVersion: v1
kind: Secret
metadata:
  name: e2e-ghost.node-password.kubling
  namespace: kube-system
  labels: {kubling.io/node-password: "true"}
data: {hash: eA==}
`

// checkNodeIdentity: flannel runs as its node, and a node's credentials may
// change its own Node only (Node authorizer, NodeRestriction); the old
// shared flannel identity is gone. The running kubelet has anonymous access
// off, webhook authorisation and no read-only port. Deleting a Node frees
// its name (its password Secret is marked, and swept a day later).
func checkNodeIdentity(t *testing.T, s *server, node string) {
	t.Helper()
	kubeletKubeconfig := filepath.Join(s.dataDir, "agent", "kubelet.kubeconfig")
	asNode := func(args ...string) (string, error) {
		out, err := exec.Command(bin, append([]string{"kubectl", "--kubeconfig", kubeletKubeconfig}, args...)...).CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	if _, err := os.Stat(filepath.Join(s.dataDir, "agent", "flannel.kubeconfig")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("flannel still has a kubeconfig of its own: %v", err)
	}
	if out, err := s.tryKubectl("get", "clusterrolebinding", "kubling:flannel"); err == nil || !strings.Contains(out, "NotFound") {
		t.Errorf("the shared flannel identity's binding exists: %v %s", err, out)
	}
	apply(t, s, ghostNode)
	if out, err := asNode("get", "nodes", "-o", "name"); err != nil || !strings.Contains(out, "node/e2e-ghost") || !strings.Contains(out, "node/"+node) {
		t.Errorf("a node cannot list the nodes flannel needs: %v\n%s", err, out)
	}
	for what, args := range map[string][]string{
		"label another node":           {"label", "node", "e2e-ghost", "kubling.test/owned=yes"},
		"annotate another node":        {"annotate", "node", "e2e-ghost", "flannel.alpha.coreos.com/public-ip=192.0.2.99"},
		"delete another node":          {"delete", "node", "e2e-ghost", "--wait=false"},
		"read another node's password": {"get", "secret", "-n", "kube-system", "e2e-ghost.node-password.kubling"},
	} {
		if out, err := asNode(args...); err == nil || !strings.Contains(out, "forbidden") {
			t.Errorf("%s with node %s's credentials: %v\n%s, want forbidden", what, node, err, out)
		}
	}
	// flannel's own write, a status patch with no read before it (kubectl
	// would GET nodes/status first, which nodes may not): allowed on its
	// own Node, forbidden on another.
	patch := []byte(`{"metadata":{"annotations":{"flannel.alpha.coreos.com/public-ip":"192.0.2.99"}}}`)
	if code := patchNodeStatus(t, s.dataDir, "e2e-ghost", patch); code != http.StatusForbidden {
		t.Errorf("patch another node's status with node %s's credentials: %d, want 403", node, code)
	}
	own := s.kubectl("get", "node", node, "-o", `jsonpath={.metadata.annotations.flannel\.alpha\.coreos\.com/public-ip}`)
	if code := patchNodeStatus(t, s.dataDir, node, []byte(`{"metadata":{"annotations":{"flannel.alpha.coreos.com/public-ip":"`+own+`"}}}`)); code != http.StatusOK {
		t.Errorf("node %s patching its own status: %d, want 200", node, code)
	}

	// The kubelet as it runs (configz), not as kubling meant to write it.
	var configz struct {
		KubeletConfig struct {
			Authentication struct {
				Anonymous struct{ Enabled bool }
				Webhook   struct{ Enabled bool }
			}
			Authorization struct{ Mode string }
			ReadOnlyPort  int
		} `json:"kubeletconfig"`
	}
	raw := s.kubectl("get", "--raw", "/api/v1/nodes/"+node+"/proxy/configz")
	if err := json.Unmarshal([]byte(raw), &configz); err != nil {
		t.Fatalf("kubelet configz: %v\n%s", err, raw)
	}
	if k := configz.KubeletConfig; k.Authentication.Anonymous.Enabled || !k.Authentication.Webhook.Enabled || k.Authorization.Mode != "Webhook" || k.ReadOnlyPort != 0 {
		t.Errorf("kubelet: anonymous %v, webhook authentication %v, authorization %q, read-only port %d", k.Authentication.Anonymous.Enabled, k.Authentication.Webhook.Enabled, k.Authorization.Mode, k.ReadOnlyPort)
	}

	s.kubectl("delete", "node", "e2e-ghost")
	eventually(t, 30*time.Second, "the deleted node's name freed (its password Secret marked)", func() string {
		out, err := s.tryKubectl("get", "secret", "-n", "kube-system", "e2e-ghost.node-password.kubling", "-o", `jsonpath={.metadata.annotations.kubling\.io/node-deleted-at}`)
		if err != nil || out == "" {
			return "not marked: " + out
		}
		return ""
	})
}

// patchNodeStatus sends a merge patch of node's status as the server's
// node (its kubelet client certificate), and returns the HTTP status.
func patchNodeStatus(t *testing.T, dataDir, node string, patch []byte) int {
	t.Helper()
	tlsDir := filepath.Join(dataDir, "agent", "tls")
	cert, err := tls.LoadX509KeyPair(filepath.Join(tlsDir, "client-kubelet.crt"), filepath.Join(tlsDir, "client-kubelet.key"))
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{Certificates: []tls.Certificate{cert}, InsecureSkipVerify: true}}} //nolint:gosec // the status code is what is checked
	req, err := http.NewRequest(http.MethodPatch, "https://127.0.0.1:6443/api/v1/nodes/"+node+"/status", bytes.NewReader(patch))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/merge-patch+json")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func (s *server) tool(name string, args ...string) string {
	s.t.Helper()
	cmd := exec.Command(bin, append([]string{name}, args...)...)
	cmd.Env = append(os.Environ(), "KUBLING_DATA_DIR="+s.dataDir)
	out, err := cmd.Output()
	if err != nil {
		s.t.Fatalf("kubling %s %v: %v", name, args, err)
	}
	return strings.TrimSpace(string(out))
}

// bundledImage is the reference of the image containerd holds that starts
// with prefix.
func bundledImage(t *testing.T, s *server, prefix string) string {
	t.Helper()
	for _, ref := range strings.Fields(s.tool("ctr", "images", "ls", "-q")) {
		if strings.HasPrefix(ref, prefix) {
			return ref
		}
	}
	t.Fatalf("no image %s* in containerd", prefix)
	return ""
}

// imageLayers lists the layer digests of an image's manifest, read from
// containerd's content store.
func imageLayers(t *testing.T, s *server, ref string) []string {
	t.Helper()
	lines := strings.Split(s.tool("ctr", "images", "ls", "name=="+ref), "\n")
	if len(lines) != 2 || len(strings.Fields(lines[1])) < 3 {
		t.Fatalf("ctr images ls %s: %q", ref, lines)
	}
	var manifest struct {
		Layers []struct{ Digest string }
	}
	if err := json.Unmarshal([]byte(s.tool("ctr", "content", "get", strings.Fields(lines[1])[2])), &manifest); err != nil || len(manifest.Layers) == 0 {
		t.Fatalf("%s: manifest without layers: %v", ref, err)
	}
	var out []string
	for _, l := range manifest.Layers {
		out = append(out, l.Digest)
	}
	return out
}

func killall(t *testing.T, dataDir string) {
	t.Helper()
	cmd := exec.Command(filepath.Join(repoRoot(), "scripts", "kubling-killall.sh"))
	cmd.Env = append(os.Environ(), "KUBLING_DATA_DIR="+dataDir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("killall: %v\n%s", err, out)
	}
}

func repoRoot() string {
	wd, _ := os.Getwd()
	return filepath.Join(wd, "..", "..")
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func httpGet(url string) (string, error) {
	c := &http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return strings.TrimSpace(string(b)), err
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == strings.TrimSpace(s) {
			return true
		}
	}
	return false
}

// processesUnder lists live processes whose executable lies under dir
// (containerd, shims). Zombies have no executable and do not count: on hosts
// whose PID 1 does not reap, killed orphans stay zombies.
// mountsUnder lists the mounts of /proc/self/mounts strictly below any of
// dirs (this test's own kubling: other kublings on the host are not its
// business).
func mountsUnder(dirs ...string) []string {
	b, _ := os.ReadFile("/proc/self/mounts")
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		for _, d := range dirs {
			if strings.HasPrefix(fields[1], d+"/") {
				out = append(out, line)
				break
			}
		}
	}
	return out
}

func processesUnder(dir string) []string {
	var out []string
	procs, _ := filepath.Glob("/proc/[0-9]*/exe")
	for _, p := range procs {
		if exe, err := os.Readlink(p); err == nil && strings.HasPrefix(exe, dir+"/") {
			out = append(out, filepath.Base(filepath.Dir(p))+":"+exe)
		}
	}
	return out
}

// containerdPID is the live containerd from dataDir's payload (0 if none).
func containerdPID(t *testing.T, dataDir string) int {
	t.Helper()
	for _, p := range processesUnder(dataDir) {
		pid, exe, _ := strings.Cut(p, ":")
		if filepath.Base(exe) == "containerd" {
			n, _ := strconv.Atoi(pid)
			return n
		}
	}
	return 0
}

// kernelHasNFS reads the host's NFS support the simple way: a registered
// filesystem or an installed module.
func kernelHasNFS() bool {
	fs, _ := os.ReadFile("/proc/filesystems")
	if strings.Contains(string(fs), "\tnfs") {
		return true
	}
	release, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	mods, _ := filepath.Glob("/lib/modules/" + strings.TrimSpace(string(release)) + "/kernel/fs/nfs/nfs.ko*")
	return len(mods) > 0
}
