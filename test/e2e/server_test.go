//go:build e2e

package e2e

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

const deployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: e2e
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: registry.example/web:1
`

const lonelyPod = `apiVersion: v1
kind: Pod
metadata:
  name: lonely
  namespace: e2e
spec:
  containers:
  - name: c
    image: registry.example/lonely:1
`

func apply(t *testing.T, s *server, manifest string) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "m.yaml")
	if err := os.WriteFile(f, []byte(manifest), 0o600); err != nil {
		t.Fatal(err)
	}
	s.kubectl("apply", "-f", f)
}

// TestServerLifecycle is issue 2's end-to-end test: the control plane comes
// up, controllers and scheduler act, and everything survives a restart.
func TestServerLifecycle(t *testing.T) {
	s := newServer(t)
	s.start("--write-kubeconfig-mode", "0640", "--tls-san", "api.kubling.test", "--tls-san", "192.0.2.10")

	// One line per phase, with durations, then "ready".
	for _, want := range []string{`"Certificates ready"`, `component="datastore"`, `component="apiserver"`, `component="scheduler"`, `component="controller-manager"`, `"kubling is ready"`} {
		if !strings.Contains(s.out.String(), want) {
			t.Errorf("start-up log lacks %s:\n%s", want, s.out)
		}
	}
	if info, err := os.Stat(s.kubeconfig); err != nil || info.Mode().Perm() != 0o640 {
		t.Fatalf("kubeconfig: %v %v", info, err)
	}
	if _, err := os.Stat(filepath.Join(s.dataDir, "server", "db", "state.db")); err != nil {
		t.Fatalf("SQLite datastore not where documented: %v", err)
	}
	if got := s.kubectl("get", "--raw", "/readyz"); got != "ok" {
		t.Fatalf("/readyz = %q", got)
	}
	checkServingCert(t)
	checkAnonymous(t)
	soon(t, time.Minute, "the CoreDNS Service", func() string {
		if got, _ := s.tryKubectl("get", "service", "kube-dns", "-n", "kube-system", "-o", "jsonpath={.spec.clusterIP}"); got != "10.43.0.10" {
			return fmt.Sprintf("CoreDNS service clusterIP %q", got)
		}
		return ""
	})

	// Objects of every kind the issue names.
	s.kubectl("create", "namespace", "e2e")
	nsUID := s.kubectl("get", "namespace", "e2e", "-o", "jsonpath={.metadata.uid}")
	s.kubectl("create", "configmap", "one", "-n", "e2e", "--from-literal=key=value-one")
	s.kubectl("create", "configmap", "two", "-n", "e2e", "--from-literal=key=value-two")
	apply(t, s, deployment)

	// Controllers run: the Deployment gets its ReplicaSet, which creates pods.
	eventually(t, time.Minute, "ReplicaSet with 2 pods", func() string {
		out, _ := s.tryKubectl("get", "pods", "-n", "e2e", "-l", "app=web", "-o", "name")
		if n := len(strings.Fields(out)); n != 2 {
			return fmt.Sprintf("%d pods: %s", n, out)
		}
		return ""
	})
	rsName := s.kubectl("get", "rs", "-n", "e2e", "-l", "app=web", "-o", "jsonpath={.items[0].metadata.name}")

	// The audit log is on: metadata of each request, never a Secret's value.
	const secretValue = "audit-must-not-see-this-3f9a"
	s.kubectl("create", "secret", "generic", "hush", "-n", "e2e", "--from-literal=k="+secretValue)
	auditLog := filepath.Join(s.dataDir, "server", "logs", "audit.log")
	eventually(t, 30*time.Second, "the Secret's creation in the audit log", func() string {
		data, _ := os.ReadFile(auditLog)
		for _, line := range strings.Split(string(data), "\n") {
			if strings.Contains(line, `"verb":"create"`) && strings.Contains(line, `"resource":"secrets"`) && strings.Contains(line, `"name":"hush"`) {
				return ""
			}
		}
		return fmt.Sprintf("%s has %d bytes, no create of secret e2e/hush", auditLog, len(data))
	})
	if data, _ := os.ReadFile(auditLog); strings.Contains(string(data), secretValue) || strings.Contains(string(data), base64.StdEncoding.EncodeToString([]byte(secretValue))) {
		t.Error("the audit log holds a Secret's value")
	}

	// Secrets are encrypted at rest: the datastore's files hold the
	// ConfigMap's value (so the scan below can see a value) but not the
	// Secret's; the API returns it.
	var db []byte
	for _, f := range []string{"state.db", "state.db-wal"} {
		data, _ := os.ReadFile(filepath.Join(s.dataDir, "server", "db", f))
		db = append(db, data...)
	}
	if !strings.Contains(string(db), "value-one") {
		t.Error("the ConfigMap's value is not in the SQLite files: the scan proves nothing")
	}
	if strings.Contains(string(db), secretValue) || !strings.Contains(string(db), "k8s:enc:secretbox:v1:") {
		t.Error("a Secret is stored unencrypted")
	}
	if got := s.kubectl("get", "secret", "hush", "-n", "e2e", "-o", "jsonpath={.data.k}"); got != base64.StdEncoding.EncodeToString([]byte(secretValue)) {
		t.Errorf("the encrypted Secret reads back as %q", got)
	}
	if code, out := run(t, exec.Command(bin, "secrets-encrypt", "status", "--data-dir", s.dataDir)); code != 0 || !strings.Contains(out, "Encryption of Secrets: enabled") || !strings.Contains(out, "Provider: secretbox") {
		t.Errorf("secrets-encrypt status: %d\n%s", code, out)
	}

	// The scheduler runs: with no node, a bare pod stays Pending and says why.
	apply(t, s, lonelyPod)
	eventually(t, time.Minute, "FailedScheduling event for the bare pod", func() string {
		out, _ := s.tryKubectl("get", "events", "-n", "e2e", "--field-selector", "involvedObject.name=lonely,reason=FailedScheduling", "-o", "jsonpath={.items[*].message}")
		if !strings.Contains(out, "no nodes available") {
			return "events: " + out
		}
		return ""
	})
	if phase := s.kubectl("get", "pod", "lonely", "-n", "e2e", "-o", "jsonpath={.status.phase}"); phase != "Pending" {
		t.Fatalf("bare pod phase %q", phase)
	}

	// Restart on the same data dir: every object, certificate and the token survive.
	pkiBefore := hashTree(t, filepath.Join(s.dataDir, "server", "tls"))
	tokenBefore := readFile(t, filepath.Join(s.dataDir, "server", "token"))
	s.stop()
	if _, err := os.Stat(filepath.Join(s.dataDir, "server", "kine.sock")); err == nil {
		t.Error("kine socket left behind after stop")
	}
	s.start()
	if got := s.kubectl("get", "namespace", "e2e", "-o", "jsonpath={.metadata.uid}"); got != nsUID {
		t.Fatalf("namespace uid %q after restart, was %q", got, nsUID)
	}
	for name, want := range map[string]string{"one": "value-one", "two": "value-two"} {
		if got := s.kubectl("get", "configmap", name, "-n", "e2e", "-o", "jsonpath={.data.key}"); got != want {
			t.Errorf("configmap %s = %q after restart", name, got)
		}
	}
	if got := s.kubectl("get", "deployment", "web", "-n", "e2e", "-o", "jsonpath={.spec.replicas}"); got != "2" {
		t.Errorf("deployment replicas %q after restart", got)
	}
	if got := s.kubectl("get", "rs", "-n", "e2e", "-l", "app=web", "-o", "jsonpath={.items[*].metadata.name}"); got != rsName {
		t.Errorf("replicasets %q after restart, was %q", got, rsName)
	}
	if got := s.kubectl("get", "pod", "lonely", "-n", "e2e", "-o", "jsonpath={.status.phase}"); got != "Pending" {
		t.Errorf("bare pod %q after restart", got)
	}
	if hashTree(t, filepath.Join(s.dataDir, "server", "tls")) != pkiBefore {
		t.Error("certificates changed across a restart")
	}
	if readFile(t, filepath.Join(s.dataDir, "server", "token")) != tokenBefore {
		t.Error("token changed across a restart")
	}

	// kubectl through a symlink named kubectl, with $KUBECONFIG.
	link := filepath.Join(t.TempDir(), "kubectl")
	if err := os.Symlink(bin, link); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(link, "get", "configmap", "one", "-n", "e2e", "-o", "name")
	cmd.Env = append(os.Environ(), "KUBECONFIG="+s.kubeconfig)
	if code, out := run(t, cmd); code != 0 || strings.TrimSpace(out) != "configmap/one" {
		t.Errorf("kubectl symlink: %d %s", code, out)
	}
	s.stop()

	// The stopped data dir now belongs to this cluster: another token is refused
	// and nothing in the dir changes.
	before := hashTree(t, s.dataDir)
	code, out := run(t, exec.Command(bin, "server", "--disable-agent", "--data-dir", s.dataDir, "--write-kubeconfig", s.kubeconfig, "--token", "not-this-clusters-token"))
	expectOneLineError(t, code, out, "belongs to another cluster")
	if hashTree(t, s.dataDir) != before {
		t.Error("refused start changed the data dir")
	}
}

func TestVersionAndHelp(t *testing.T) {
	code, out := run(t, exec.Command(bin, "--version"))
	if code != 0 || !strings.Contains(out, "kubling version") || !strings.Contains(out, "kubernetes v1.37.1") || !strings.Contains(out, "kine v") {
		t.Fatalf("--version: %d\n%s", code, out)
	}
	code, out = run(t, exec.Command(bin, "server", "--help"))
	if code != 0 {
		t.Fatalf("server --help: %d", code)
	}
	for _, want := range []string{"--data-dir", "/var/lib/kubling", "$KUBLING_DATA_DIR", "--cluster-cidr", "10.42.0.0/16", "$KUBLING_TOKEN", "--write-kubeconfig-mode"} {
		if !strings.Contains(out, want) {
			t.Errorf("server --help lacks %q", want)
		}
	}
}

// expectOneLineError wants a non-zero exit and exactly one line of output
// that contains want.
func expectOneLineError(t *testing.T, code int, out, want string) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code == 0 || len(lines) != 1 || !strings.Contains(out, want) {
		t.Fatalf("want one error line containing %q and a non-zero exit, got exit %d:\n%s", want, code, out)
	}
}

// TestBadInput: each mistake gets one clear line, a non-zero exit, and
// nothing written.
func TestBadInput(t *testing.T) {
	type tc struct {
		name  string
		args  []string
		setup func(t *testing.T, dataDir string) []string // returns extra args
		want  string
		asUID int
	}
	cases := []tc{
		{name: "unknown flag", args: []string{"--no-such-flag"}, want: "flag provided but not defined"},
		{name: "not root", asUID: 65534, want: "must run as root"},
		{name: "malformed cluster CIDR", args: []string{"--cluster-cidr", "10.42.0.0/33"}, want: "--cluster-cidr"},
		{name: "missing audit policy", args: []string{"--audit-policy-file", "/nonexistent/policy.yaml"}, want: "--audit-policy-file"},
		{name: "audit policy and no audit", args: []string{"--audit-policy-file", "/etc/hostname", "--disable-audit"}, want: "give one or the other"},
		{name: "short token secret", args: []string{"--token", "tooshort"}, want: "at least 16 characters"},
		{name: "malformed service CIDR", args: []string{"--service-cidr", "10.43.0.0"}, want: "--service-cidr"},
		{name: "CIDRs overlap each other", args: []string{"--cluster-cidr", "10.42.0.0/16", "--service-cidr", "10.42.0.0/20"}, want: "overlaps --service-cidr"},
		{name: "CIDR overlaps a host route", want: "overlaps the host route", setup: func(t *testing.T, _ string) []string {
			const cidr = "10.197.0.0/16"
			if out, err := exec.Command("ip", "route", "add", cidr, "dev", "lo").CombinedOutput(); err != nil {
				t.Fatalf("add test route: %v %s", err, out)
			}
			t.Cleanup(func() { exec.Command("ip", "route", "del", cidr, "dev", "lo").Run() })
			return []string{"--cluster-cidr", cidr}
		}},
		{name: "port in use", want: "is not free", setup: func(t *testing.T, _ string) []string {
			l, err := listenAny()
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
			return []string{"--https-listen-port", fmt.Sprint(portOf(l))}
		}},
		{name: "data dir not writable", want: "not writable", setup: func(t *testing.T, dataDir string) []string {
			ro := filepath.Dir(dataDir)
			if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", ro).CombinedOutput(); err != nil {
				t.Fatalf("mount read-only tmpfs: %v %s", err, out)
			}
			t.Cleanup(func() { exec.Command("umount", ro).Run() })
			return nil
		}},
		{name: "data dir is a file", want: "not a directory", setup: func(t *testing.T, dataDir string) []string {
			if err := os.WriteFile(filepath.Dir(dataDir)+"/file", nil, 0o600); err != nil {
				t.Fatal(err)
			}
			return []string{"--data-dir", filepath.Dir(dataDir) + "/file/data"}
		}},
		{name: "bad kubeconfig mode", args: []string{"--write-kubeconfig-mode", "rw-r--r--"}, want: "--write-kubeconfig-mode"},
		{name: "bad component arg", args: []string{"--kube-apiserver-arg", "no-value"}, want: "want key=value"},
		{name: "unknown component flag", args: []string{"--kube-controller-manager-arg", "no-such-flag=1"}, want: "unknown flag: --no-such-flag"},
		{name: "unsupported datastore", args: []string{"--datastore-endpoint", "redis://localhost"}, want: "unsupported scheme"},
		{name: "cluster-init with external datastore", args: []string{"--cluster-init", "--datastore-endpoint", "postgres://kubling:hunter2@127.0.0.1/kubling"}, want: "cannot be combined with --datastore-endpoint postgres://kubling:xxxxx@"},
		{name: "unreadable datastore CA", args: []string{"--datastore-endpoint", "https://127.0.0.1:2379", "--datastore-cafile", "/nonexistent/ca.crt"}, want: "--datastore-cafile: open /nonexistent/ca.crt"},
		{name: "external etcd with a path", args: []string{"--datastore-endpoint", "https://127.0.0.1:2379/kubling"}, want: "--datastore-endpoint"},
		{name: "restore without reset", args: []string{"--cluster-reset-restore-path", "/etc/hostname"}, want: "goes with --cluster-reset"},
		{name: "reset without etcd", args: []string{"--cluster-reset"}, want: "no embedded etcd member to reset"},
		{name: "restore a file that is no snapshot", args: []string{"--cluster-reset", "--cluster-reset-restore-path", "/etc/hostname"}, want: "not a snapshot"},
		{name: "bad snapshot schedule", args: []string{"--snapshot-schedule-cron", "0 25 * * *"}, want: "--snapshot-schedule-cron \"0 25 * * *\""},
		{name: "server join without token", args: []string{"--server", "https://127.0.0.1:6443"}, want: "give the cluster's --token"},
		{name: "server join with cluster-init", args: []string{"--server", "https://127.0.0.1:6443", "--cluster-init", "--token", "KL1" + strings.Repeat("0", 64) + "::abcdef.0123456789abcdef"}, want: "--cluster-init starts a new one"},
		{name: "server join with external datastore", args: []string{"--server", "https://127.0.0.1:6443", "--datastore-endpoint", "postgres://kubling:hunter2@127.0.0.1/kubling", "--token", "KL1" + strings.Repeat("0", 64) + "::abcdef.0123456789abcdef"}, want: "without --server"},
		{name: "unknown add-on", args: []string{"--disable", "traefik"}, want: "not a bundled add-on"},
		{name: "bad external IP", args: []string{"--node-external-ip", "203.0.113.300"}, want: "--node-external-ip \"203.0.113.300\": not an IP address"},
		{name: "unknown CNI", args: []string{"--cni", "cilium"}, want: "--cni \"cilium\": want flannel or calico"},
		{name: "calico with a flannel backend", args: []string{"--cni", "calico", "--flannel-backend", "host-gw"}, want: "--flannel-backend host-gw: --cni calico runs no flannel"},
		{name: "relative local storage path", args: []string{"--default-local-storage-path", "volumes"}, want: "--default-local-storage-path \"volumes\": want an absolute path"},
		{name: "local storage path is a file", args: []string{"--default-local-storage-path", "/etc/hostname"}, want: "/etc is a system folder"},
		{name: "stray argument", args: []string{"extra"}, want: "unexpected argument"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			base := filepath.Join(t.TempDir(), "parent")
			if err := os.Mkdir(base, 0o755); err != nil {
				t.Fatal(err)
			}
			dataDir := filepath.Join(base, "data")
			kubeconfig := filepath.Join(t.TempDir(), "kubeconfig.yaml")
			args := []string{"server", "--disable-agent", "--data-dir", dataDir, "--write-kubeconfig", kubeconfig}
			if c.setup != nil {
				args = append(args, c.setup(t, dataDir)...)
			}
			args = append(args, c.args...)
			cmd := exec.Command(bin, args...)
			if c.asUID != 0 {
				cmd.SysProcAttr = nobody(c.asUID)
			}
			done := make(chan struct{})
			timer := time.AfterFunc(time.Minute, func() { cmd.Process.Kill() })
			code, out := run(t, cmd)
			timer.Stop()
			close(done)
			expectOneLineError(t, code, out, c.want)
			if _, err := os.Stat(dataDir); err == nil {
				t.Errorf("data dir %s was created", dataDir)
			}
			if _, err := os.Stat(kubeconfig); err == nil {
				t.Errorf("kubeconfig %s was written", kubeconfig)
			}
		})
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// hashTree fingerprints every regular file (name and content) under dir.
func hashTree(t *testing.T, dir string) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		lines = append(lines, path+" "+hex.EncodeToString(sum[:]))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// checkServingCert wants the apiserver's certificate to name the host, the
// in-cluster service and the --tls-san values, and to chain to server-ca.
// checkAnonymous: a request without credentials reaches /cacerts and
// nothing else (401, or 403 where authenticated as anonymous but denied).
func checkAnonymous(t *testing.T) {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // no credentials sent; the status is what is checked
	do := func(method, path string) int {
		req, err := http.NewRequest(method, "https://127.0.0.1:6443"+path, strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := do(http.MethodGet, "/cacerts"); code != http.StatusOK {
		t.Errorf("anonymous GET /cacerts: %d, want 200", code)
	}
	for _, path := range []string{"/", "/api", "/apis", "/version", "/healthz", "/livez", "/readyz", "/metrics", "/openapi/v2",
		"/api/v1/namespaces/kube-system/secrets", "/api/v1/nodes", "/debug/pprof/", "/v1-kubling/join", "/cacerts/../api"} {
		for _, method := range []string{http.MethodGet, http.MethodPost} {
			if code := do(method, path); code != http.StatusUnauthorized && code != http.StatusForbidden {
				t.Errorf("anonymous %s %s: %d, want 401 or 403", method, path, code)
			}
		}
	}
}

func checkServingCert(t *testing.T) {
	t.Helper()
	conn, err := tls.Dial("tcp", "127.0.0.1:6443", &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // inspecting, not trusting
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cert := conn.ConnectionState().PeerCertificates[0]
	host, _ := os.Hostname()
	for _, name := range []string{"api.kubling.test", "kubernetes.default.svc.cluster.local", "localhost", strings.ToLower(host)} {
		if !slices.Contains(cert.DNSNames, name) {
			t.Errorf("serving certificate lacks DNS name %s: %v", name, cert.DNSNames)
		}
	}
	for _, ip := range []string{"127.0.0.1", "10.43.0.1", "192.0.2.10"} {
		if !slices.ContainsFunc(cert.IPAddresses, net.ParseIP(ip).Equal) {
			t.Errorf("serving certificate lacks IP %s: %v", ip, cert.IPAddresses)
		}
	}
}

// TestAgentBadInput: every bad agent input is one line, exit 1, and no data
// dir. (A wrong CA, a wrong token and a taken node name need a server: the
// multi-node test covers them; clock skew is unit-tested in pkg/join.)
func TestAgentBadInput(t *testing.T) {
	badRegistries := filepath.Join(t.TempDir(), "registries.yaml")
	if err := os.WriteFile(badRegistries, []byte("mirror:\n  docker.io: {endpoint: [m]}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	hash := strings.Repeat("ab", 32)
	good := []string{"--server", "https://127.0.0.1:6443", "--token", "KL1" + hash + "::abcdef.0123456789abcdef"}
	cases := []struct {
		name  string
		args  []string
		want  string
		asUID int
	}{
		{name: "no server", args: []string{"--token", good[3]}, want: "--server is required"},
		{name: "plain http", args: []string{"--server", "http://127.0.0.1:6443", "--token", good[3]}, want: "want https://"},
		{name: "no token", args: []string{"--server", good[1]}, want: "--token is required"},
		{name: "bare secret", args: []string{"--server", good[1], "--token", "secret"}, want: "cannot verify the server"},
		{name: "malformed token", args: []string{"--server", good[1], "--token", "KL1abc::x"}, want: "want KL1"},
		{name: "token file missing", args: []string{"--server", good[1], "--token-file", "/nonexistent/token"}, want: "--token-file"},
		{name: "resolv.conf missing", args: append(good, "--resolv-conf", "/nonexistent/resolv.conf"), want: "--resolv-conf /nonexistent/resolv.conf"},
		{name: "bad node name", args: append(good, "--node-name", "Not_A_Name"), want: "--node-name"},
		{name: "bad label", args: append(good, "--node-label", "x"), want: "--node-label"},
		{name: "bad external IP", args: append(good, "--node-external-ip", "localhost"), want: "--node-external-ip \"localhost\": not an IP address"},
		{name: "two external IPv4s", args: append(good, "--node-external-ip", "203.0.113.1,203.0.113.2"), want: "one address per IP family"},
		{name: "bad taint", args: append(good, "--node-taint", "a=b:Sometimes"), want: "--node-taint"},
		{name: "bad default runtime", args: append(good, "--default-runtime", "NVIDIA!"), want: "--default-runtime"},
		{name: "missing default runtime", args: append(good, "--default-runtime", "nvidia"), want: "--default-runtime nvidia: this node has no such runtime"},
		{name: "not root", args: good, asUID: 65534, want: "must run as root"},
		{name: "stray argument", args: append(good, "extra"), want: "unexpected argument"},
		{name: "bad registries file", args: append(good, "--private-registry", badRegistries), want: `unknown field "mirror"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dataDir := filepath.Join(t.TempDir(), "data")
			cmd := exec.Command(bin, append([]string{"agent", "--data-dir", dataDir}, c.args...)...)
			if c.asUID != 0 {
				cmd.SysProcAttr = nobody(c.asUID)
			}
			timer := time.AfterFunc(time.Minute, func() { cmd.Process.Kill() })
			code, out := run(t, cmd)
			timer.Stop()
			expectOneLineError(t, code, out, c.want)
			if _, err := os.Stat(dataDir); err == nil {
				t.Errorf("data dir %s was created", dataDir)
			}
		})
	}
}

// TestConfigFiles: configuration file, then its .d drop-ins, then KUBLING_*
// env, then flags — each overriding the one before; unknown keys and a
// missing --config file are one-line errors. The agent's validation names
// the node name that won, so it is read before anything starts.
func TestConfigFiles(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yaml")
	good := "server: https://127.0.0.1:6443\ntoken: KL1" + strings.Repeat("ab", 32) + "::abcdef.0123456789abcdef\n"
	if err := os.WriteFile(cfg, []byte(good+"node-name: From_File\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	agent := func(env []string, args ...string) (int, string) {
		cmd := exec.Command(bin, append([]string{"agent", "--data-dir", filepath.Join(dir, "data"), "--config", cfg}, args...)...)
		cmd.Env = append(os.Environ(), env...)
		return run(t, cmd)
	}
	code, out := agent(nil)
	expectOneLineError(t, code, out, `"from_file"`)
	if err := os.MkdirAll(cfg+".d", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cfg+".d", "10-name.yaml"), []byte("node-name: From_Dropin\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out = agent(nil)
	expectOneLineError(t, code, out, `"from_dropin"`)
	code, out = agent([]string{"KUBLING_NODE_NAME=From_Env"})
	expectOneLineError(t, code, out, `"from_env"`)
	code, out = agent([]string{"KUBLING_NODE_NAME=From_Env"}, "--node-name", "From_Flag")
	expectOneLineError(t, code, out, `"from_flag"`)

	if err := os.WriteFile(filepath.Join(cfg+".d", "20-typo.yaml"), []byte("node-nmae: x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out = agent(nil)
	expectOneLineError(t, code, out, `20-typo.yaml: unknown key "node-nmae"`)

	cmd := exec.Command(bin, "server", "--config", filepath.Join(dir, "absent.yaml"), "--data-dir", filepath.Join(dir, "data"))
	code, out = run(t, cmd)
	expectOneLineError(t, code, out, "absent.yaml")
	if _, err := os.Stat(filepath.Join(dir, "data")); err == nil {
		t.Error("a data dir was created")
	}
}

// TestCheckConfigAndCompletion: check-config on this real host (it must
// pass here, where kubling runs), a FAIL for a CIDR on a host route, and
// the bash completion script completing a command and a flag.
func TestCheckConfigAndCompletion(t *testing.T) {
	code, out := run(t, exec.Command(bin, "check-config"))
	if code != 0 || !strings.Contains(out, "OK    kernel: br_netfilter") || strings.Contains(out, "FAIL") {
		t.Fatalf("check-config on this host: exit %d\n%s", code, out)
	}
	const cidr = "10.198.0.0/16"
	if out, err := exec.Command("ip", "route", "add", cidr, "dev", "lo").CombinedOutput(); err != nil {
		t.Fatalf("add test route: %v %s", err, out)
	}
	defer exec.Command("ip", "route", "del", cidr, "dev", "lo").Run()
	code, out = run(t, exec.Command(bin, "check-config", "--cluster-cidr", cidr))
	if code != 1 || !strings.Contains(out, "FAIL  --cluster-cidr "+cidr) {
		t.Fatalf("check-config with an overlapping CIDR: exit %d\n%s", code, out)
	}

	dir := t.TempDir()
	if err := os.Symlink(bin, filepath.Join(dir, "kubling")); err != nil {
		t.Fatal(err)
	}
	script := `source <(kubling completion bash)
COMP_WORDS=(kubling che); COMP_CWORD=1; _kubling; echo "commands: ${COMPREPLY[*]}"
COMP_WORDS=(kubling agent --node-l); COMP_CWORD=2; _kubling; echo "flags: ${COMP_WORDS[0]} ${COMPREPLY[*]}"`
	cmd := exec.Command("bash", "-c", script)
	cmd.Env = append(os.Environ(), "PATH="+dir+":"+os.Getenv("PATH"))
	got, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(got), "commands: check-config") || !strings.Contains(string(got), "flags: kubling --node-label") {
		t.Fatalf("bash completion: %v\n%s", err, got)
	}
	if code, out := run(t, exec.Command(bin, "completion", "zsh")); code != 0 || !strings.Contains(out, "compdef _kubling kubling") {
		t.Fatalf("zsh completion: %d %s", code, out)
	}
}
