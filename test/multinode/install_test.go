//go:build e2e

package multinode

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestInstall runs scripts/install.sh for real in two bare Debian
// containers: a server on a host with systemd as PID 1 (downloading the
// built binary from a release folder this test serves, checked by sha256,
// after refusing one with a wrong checksum), then an agent on a host with no
// init system (INSTALL_KUBLING_BIN), joined with the command the server's
// install printed, running a real pod; then kubling-uninstall.sh on both, and
// neither host may keep anything of kubling's. (OpenRC is not exercised.)
func TestInstall(t *testing.T) {
	base, systemd, bin, images := os.Getenv("KUBLING_BASE_IMAGE"), os.Getenv("KUBLING_SYSTEMD_IMAGE"), os.Getenv("KUBLING_BIN"), os.Getenv("KUBLING_TEST_IMAGES")
	agentBin := os.Getenv("KUBLING_AGENT_BIN")
	if base == "" || systemd == "" || bin == "" || images == "" || agentBin == "" {
		t.Fatal("KUBLING_BASE_IMAGE, KUBLING_SYSTEMD_IMAGE, KUBLING_BIN, KUBLING_AGENT_BIN and KUBLING_TEST_IMAGES must be set; run `make test-multinode`")
	}
	script, err := filepath.Abs("../../scripts/install.sh")
	if err != nil {
		t.Fatal(err)
	}
	teardown(t)
	t.Cleanup(func() {
		if t.Failed() {
			for _, name := range []string{"iserver", "iagent"} {
				out, _ := docker("exec", container(name), "sh", "-c", "tail -30 /var/log/kubling.log")
				t.Logf("--- last log lines of %s:\n%s", name, out)
			}
		}
		teardown(t)
	})
	mustDocker(t, "network", "create", "--subnet", subnet, "--label", label, network)
	nodes["iserver"], nodes["iagent"] = "172.30.99.20", "172.30.99.21"
	defer delete(nodes, "iserver")
	defer delete(nodes, "iagent")

	host := func(name string, withSystemd bool) {
		a := append([]string{"run", "-d"}, nodeFlags(name)...)
		// The data dir's parent is a volume: containerd's overlay snapshots
		// cannot live on the container's own overlay root.
		a = append(a, "-v", "/var/lib", "-v", bin+":/tmp/kb-bin:ro", "-v", agentBin+":/tmp/kb-agent-bin:ro", "-v", script+":/tmp/install.sh:ro")
		if withSystemd {
			a = append(a, "-e", "container=docker", "--stop-signal", "SIGRTMIN+3", "--tmpfs", "/run/lock", systemd, "/sbin/init")
		} else {
			a = append(a, base, "sleep", "infinity")
		}
		mustDocker(t, a...)
		if withSystemd {
			waitFor(t, "systemd running in "+name, time.Minute, func() error {
				out, err := docker("exec", container(name), "systemctl", "is-system-running")
				if strings.TrimSpace(out) == "running" {
					return nil
				}
				return fmt.Errorf("%s %v", out, err)
			})
		}
		// What the test entrypoint does for node containers: shared mounts
		// and a cgroup root per kubelet (they share the host's cgroup tree).
		mustDocker(t, "exec", container(name), "sh", "-c", `mount --make-rshared / && for d in /sys/fs/cgroup/*/; do [ -e "${d}cgroup.procs" ] && mkdir -p "${d}kubling-`+name+`"; done; true`)
	}
	install := func(name string, env ...string) (string, error) {
		a := []string{"exec", "-e", "INSTALL_KUBLING_EXEC=--kubelet-arg=cgroup-root=/kubling-" + name}
		for _, e := range env {
			a = append(a, "-e", e)
		}
		return docker(append(append(a, container(name)), "sh", "/tmp/install.sh")...)
	}
	// start runs the command the installer printed, as a user would.
	start := func(name, installOut string) {
		lines := strings.Split(installOut, "\n")
		for i, l := range lines {
			if strings.Contains(l, "Start kubling with:") && i+1 < len(lines) {
				mustDocker(t, "exec", "-d", container(name), "sh", "-c", "("+strings.TrimSpace(lines[i+1])+") >/var/log/kubling.log 2>&1")
				return
			}
		}
		t.Fatalf("no start command in:\n%s", installOut)
	}
	kubectlIn := func(name string, args ...string) (string, error) {
		return docker(append([]string{"exec", container(name), "kubectl"}, args...)...)
	}

	// A release folder: a channel, a good version and one whose checksum
	// is wrong, served to the containers from this test.
	release := releaseServer(t, bin)

	// The server, on a systemd host, with a setting from the environment
	// that must reach it through the service's env file.
	host("iserver", true)
	out, err := install("iserver", "INSTALL_KUBLING_RELEASE_URL="+release, "INSTALL_KUBLING_VERSION=v0.0.0-bad")
	if err == nil || !strings.Contains(out, "checksum mismatch") {
		t.Fatalf("a download with a wrong checksum was not refused: %v\n%s", err, out)
	}
	if _, err := docker("exec", container("iserver"), "test", "-e", "/usr/local/bin/kubling"); err == nil {
		t.Fatal("the refused download was installed")
	}
	out, err = install("iserver", "INSTALL_KUBLING_RELEASE_URL="+release, "KUBLING_NODE_LABEL=installed=yes")
	if err != nil || !strings.Contains(out, "downloading kubling v0.0.0-test") {
		t.Fatalf("install on the systemd host: %v\n%s", err, out)
	}
	for _, f := range []string{"/usr/local/bin/kubling", "/usr/local/bin/kubling-killall.sh", "/usr/local/bin/kubling-uninstall.sh"} {
		mustDocker(t, "exec", container("iserver"), "test", "-x", f)
	}
	for _, l := range []string{"kubectl", "crictl", "ctr"} {
		if got := strings.TrimSpace(mustDocker(t, "exec", container("iserver"), "readlink", "/usr/local/bin/"+l)); got != "kubling" {
			t.Errorf("%s links to %q", l, got)
		}
	}
	if env := mustDocker(t, "exec", container("iserver"), "stat", "-c", "%a", "/etc/kubling/kubling.env"); strings.TrimSpace(env) != "600" {
		t.Errorf("env file mode %s", env)
	}
	if env := mustDocker(t, "exec", container("iserver"), "cat", "/etc/kubling/kubling.env"); !strings.Contains(env, "KUBLING_NODE_LABEL='installed=yes'") {
		t.Errorf("env file:\n%s", env)
	}
	unit := mustDocker(t, "exec", container("iserver"), "cat", "/etc/systemd/system/kubling.service")
	for _, want := range []string{"Type=notify", "Delegate=yes", "KillMode=process", "Restart=always", "EnvironmentFile=-/etc/kubling/kubling.env", "ExecStart=/usr/local/bin/kubling server --kubelet-arg=cgroup-root=/kubling-iserver"} {
		if !strings.Contains(unit, want) {
			t.Errorf("unit lacks %q:\n%s", want, unit)
		}
	}
	// Type=notify: the install's `systemctl restart` returned once kubling
	// said it was ready.
	if state := strings.TrimSpace(mustDocker(t, "exec", container("iserver"), "systemctl", "is-active", "kubling")); state != "active" {
		t.Fatalf("service state %q", state)
	}
	if enabled := strings.TrimSpace(mustDocker(t, "exec", container("iserver"), "systemctl", "is-enabled", "kubling")); enabled != "enabled" {
		t.Errorf("service %q", enabled)
	}
	waitFor(t, "the installed server's node Ready", 3*time.Minute, func() error {
		_, err := kubectlIn("iserver", "wait", "--for=condition=Ready", "node/iserver", "--timeout=2s")
		return err
	})
	if got, _ := kubectlIn("iserver", "get", "node", "iserver", "-o", "jsonpath={.metadata.labels.installed}"); got != "yes" {
		t.Errorf("the env file's KUBLING_NODE_LABEL did not reach the server: %q", got)
	}
	join := regexp.MustCompile(`KUBLING_URL=(https://[0-9.]+:6443) KUBLING_TOKEN=<token> sh -`).FindStringSubmatch(out)
	if join == nil || join[1] != "https://"+nodes["iserver"]+":6443" || !strings.Contains(out, "/var/lib/kubling/server/agent-token on this server") {
		t.Fatalf("the installer printed no usable join command:\n%s", out)
	}
	// The token, from the file the installer named; never in its output.
	join = append(join, strings.TrimSpace(mustDocker(t, "exec", container("iserver"), "cat", "/var/lib/kubling/server/agent-token")))
	if secret := strings.SplitN(join[2], "::", 2); len(secret) != 2 || strings.Contains(out, secret[1]) {
		t.Errorf("the installer's output shows the token's secret (or the token file is malformed: %q)", join[2])
	}

	// The agent, joined with what the server printed and its token.
	host("iagent", false)
	mustDocker(t, "exec", container("iagent"), "mkdir", "-p", "/var/lib/kubling/agent/images")
	mustDocker(t, "cp", filepath.Join(images, "busybox.tar"), container("iagent")+":/var/lib/kubling/agent/images/busybox.tar")
	// Behind a proxy (never reached: the server is in NO_PROXY, and the
	// installer adds the cluster's own networks).
	// The agent build, as a release would give an agent.
	out, err = install("iagent", "INSTALL_KUBLING_BIN=/tmp/kb-agent-bin", "KUBLING_URL="+join[1], "KUBLING_TOKEN="+join[2],
		"HTTPS_PROXY=http://proxy.invalid:3128", "NO_PROXY="+subnet)
	if err != nil || !strings.Contains(out, "no systemd or OpenRC on this host") {
		t.Fatalf("install on the host without init: %v\n%s", err, out)
	}
	if env := mustDocker(t, "exec", container("iagent"), "cat", "/etc/kubling/kubling-agent.env"); !strings.Contains(env, "HTTPS_PROXY='http://proxy.invalid:3128'") ||
		!strings.Contains(env, "NO_PROXY='"+subnet+",10.42.0.0/16,10.43.0.0/16,127.0.0.1,localhost,.svc,.cluster.local'") {
		t.Errorf("agent env file's proxy settings:\n%s", env)
	}
	if env := mustDocker(t, "exec", container("iagent"), "cat", "/etc/kubling/kubling-agent.env"); !strings.Contains(env, "KUBLING_URL='"+join[1]+"'") {
		t.Errorf("agent env file:\n%s", env)
	}
	start("iagent", out)
	waitFor(t, "the installed agent's node Ready", 3*time.Minute, func() error {
		_, err := kubectlIn("iserver", "wait", "--for=condition=Ready", "node/iagent", "--timeout=2s")
		return err
	})
	pod := `apiVersion: v1
kind: Pod
metadata: {name: on-agent, namespace: default}
spec:
  nodeName: iagent
  containers:
  - {name: c, image: kubling.test/busybox:1, imagePullPolicy: Never, command: [sleep, "100000"]}
`
	if out, err := dockerStdin(pod, "exec", "-i", container("iserver"), "kubectl", "apply", "-f", "-"); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	waitFor(t, "a pod running on the agent", 2*time.Minute, func() error {
		_, err := kubectlIn("iserver", "wait", "--for=condition=Ready", "pod/on-agent", "--timeout=2s")
		return err
	})

	// Uninstall both; nothing of kubling's may remain on either host.
	if _, err := docker("exec", container("iagent"), "sh", "-c", "command -v iptables"); err == nil {
		t.Fatal("the agent's host has iptables: this test wants a host without (the bundled one runs there)")
	}
	if out, err := docker("exec", container("iagent"), "sh", "-c", "grep -l 'the payload.s iptables' /var/lib/kubling/agent/bin/iptables-restore"); err != nil {
		t.Errorf("the agent does not run the bundled iptables: %v %s", err, out)
	}
	payloadRoot := os.Getenv("KUBLING_PAYLOAD_ROOT")
	if payloadRoot == "" {
		t.Fatal("KUBLING_PAYLOAD_ROOT must be set (the build's payload folder); run `make test-multinode`")
	}
	mustDocker(t, "cp", filepath.Join(payloadRoot, "iptables"), container("iagent")+":/var/tmp/ipt-check")
	for _, name := range []string{"iagent", "iserver"} {
		out, err := docker("exec", container(name), "/usr/local/bin/kubling-uninstall.sh")
		if err != nil || !strings.Contains(out, "kubling is uninstalled") {
			t.Fatalf("uninstall on %s: %v\n%s", name, err, out)
		}
		check := `set -u
for f in /usr/local/bin/kubling /usr/local/bin/kubectl /usr/local/bin/crictl /usr/local/bin/ctr /usr/local/bin/kubling-killall.sh /usr/local/bin/kubling-uninstall.sh /etc/kubling /var/lib/kubling /run/kubling; do
	[ -e "$f" ] || [ -L "$f" ] && echo "file: $f"
done
grep -E 'kubling|/run/netns' /proc/mounts | sed 's/^/mount: /'
ip -o link | grep -E 'cni0|flannel|veth' | sed 's/^/link: /'
ls /run/netns 2>/dev/null | sed 's/^/netns: /'
# The agent's host has no iptables: read its tables, both kinds, with the
# build's own copy of the bundled one (the host's copy went with uninstall).
if command -v iptables-save >/dev/null; then
	iptables-save
else
	for mode in nft legacy; do
		XTABLES_LIBDIR=/var/tmp/ipt-check/xtables /var/tmp/ipt-check/lib/ld-*.so* --library-path /var/tmp/ipt-check/lib \
			--argv0 iptables-save /var/tmp/ipt-check/sbin/xtables-$mode-multi || echo "rule: cannot read the $mode tables"
	done
fi | grep -E '^-A (KUBE|CNI|FLANNEL)|^:(KUBE|CNI|FLANNEL)' | sed 's/^/rule: /'
for p in /proc/[0-9]*; do
	exe=$(readlink "$p/exe" 2>/dev/null) || continue
	case "$exe" in *kubling*|*containerd*|*pause*) echo "process: $exe";; esac
done
true`
		if name == "iserver" {
			check += "\nsystemctl list-unit-files 'kubling*' --no-legend | sed 's/^/unit: /'\ntrue"
		}
		if left := strings.TrimSpace(mustDocker(t, "exec", container(name), "sh", "-c", check)); left != "" {
			t.Errorf("%s still has kubling's state after uninstall:\n%s", name, left)
		}
	}
}

// releaseServer serves a release folder to the containers (on the test
// network's gateway address): channel stable → v0.0.0-test, whose binary is
// bin with its right checksum, and v0.0.0-bad, whose checksum is wrong.
func releaseServer(t *testing.T, bin string) string {
	t.Helper()
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	// As `make release` packs it: gzip, and one sha256sum.txt.
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestSpeed)
	if _, err := zw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(gz.Bytes())
	files := map[string][]byte{
		"/channels/stable":                       []byte("v0.0.0-test\n"),
		"/download/v0.0.0-test/kubling-amd64.gz": gz.Bytes(),
		"/download/v0.0.0-test/sha256sum.txt":    []byte(hex.EncodeToString(sum[:]) + "  kubling-amd64.gz\n"),
		"/download/v0.0.0-bad/kubling-amd64.gz":  gz.Bytes(),
		"/download/v0.0.0-bad/sha256sum.txt":     []byte(strings.Repeat("0", 64) + "  kubling-amd64.gz\n"),
	}
	gateway := strings.TrimSpace(mustDocker(t, "network", "inspect", "-f", "{{(index .IPAM.Config 0).Gateway}}", network))
	if gateway == "" || gateway == "<no value>" {
		gateway = strings.TrimSuffix(nodes["server"], ".10") + ".1"
	}
	l, err := net.Listen("tcp", gateway+":0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if b, ok := files[r.URL.Path]; ok {
			_, _ = w.Write(b)
			return
		}
		http.NotFound(w, r)
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { srv.Close() })
	return "http://" + l.Addr().String()
}

func dockerStdin(stdin string, args ...string) (string, error) {
	cmd := execCommand("docker", args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}
