//go:build e2e

package multinode

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestInstall runs scripts/install.sh for real, with the built binary
// (INSTALL_KUBLING_BIN), in two bare Debian containers with no init system:
// a server, then an agent joined from what the installer printed, a real pod
// on the agent; then kubling-uninstall.sh on both, and the containers' host
// state must hold nothing of kubling's. (systemd as PID 1 does not run in a
// container on these cgroup-v1 hosts without --privileged; the systemd and
// OpenRC branches are not exercised here.)
func TestInstall(t *testing.T) {
	base, bin, images := os.Getenv("KUBLING_BASE_IMAGE"), os.Getenv("KUBLING_BIN"), os.Getenv("KUBLING_TEST_IMAGES")
	if base == "" || bin == "" || images == "" {
		t.Fatal("KUBLING_BASE_IMAGE, KUBLING_BIN and KUBLING_TEST_IMAGES must be set; run `make test-multinode`")
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

	host := func(name string) {
		a := append([]string{"run", "-d"}, nodeFlags(name)...)
		// The data dir's parent is a volume: containerd's overlay snapshots
		// cannot live on the container's own overlay root.
		a = append(a, "-v", "/var/lib", "-v", bin+":/tmp/kb-bin:ro", "-v", script+":/tmp/install.sh:ro", base, "sleep", "infinity")
		mustDocker(t, a...)
		// What the test entrypoint does for node containers: shared mounts
		// and a cgroup root per kubelet (they share the host's cgroup tree).
		mustDocker(t, "exec", container(name), "sh", "-c", `mount --make-rshared / && for d in /sys/fs/cgroup/*/; do [ -e "${d}cgroup.procs" ] && mkdir -p "${d}kubling-`+name+`"; done; true`)
	}
	install := func(name string, env ...string) string {
		a := []string{"exec", "-e", "INSTALL_KUBLING_BIN=/tmp/kb-bin", "-e", "INSTALL_KUBLING_EXEC=--kubelet-arg=cgroup-root=/kubling-" + name}
		for _, e := range env {
			a = append(a, "-e", e)
		}
		out := mustDocker(t, append(append(a, container(name)), "sh", "/tmp/install.sh")...)
		if !strings.Contains(out, "no systemd or OpenRC on this host") {
			t.Fatalf("install on %s did not say it found no init system:\n%s", name, out)
		}
		return out
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

	// The server, with a setting from the environment that must reach it
	// through the service's env file.
	host("iserver")
	out := install("iserver", "KUBLING_NODE_LABEL=installed=yes")
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
	join := regexp.MustCompile(`KUBLING_URL=(https://[0-9.]+:6443)`).FindStringSubmatch(out)
	if join == nil || join[1] != "https://"+nodes["iserver"]+":6443" {
		t.Fatalf("the installer printed no usable join command:\n%s", out)
	}
	start("iserver", out)
	waitFor(t, "the installed server's node Ready", 3*time.Minute, func() error {
		_, err := kubectlIn("iserver", "wait", "--for=condition=Ready", "node/iserver", "--timeout=2s")
		return err
	})
	if got, _ := kubectlIn("iserver", "get", "node", "iserver", "-o", "jsonpath={.metadata.labels.installed}"); got != "yes" {
		t.Errorf("the env file's KUBLING_NODE_LABEL did not reach the server: %q", got)
	}

	// The agent, joined with what the server printed and its token.
	tok := strings.TrimSpace(mustDocker(t, "exec", container("iserver"), "cat", "/var/lib/kubling/server/token"))
	host("iagent")
	mustDocker(t, "exec", container("iagent"), "mkdir", "-p", "/var/lib/kubling/agent/images")
	mustDocker(t, "cp", filepath.Join(images, "busybox.tar"), container("iagent")+":/var/lib/kubling/agent/images/busybox.tar")
	out = install("iagent", "KUBLING_URL="+join[1], "KUBLING_TOKEN="+tok)
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
iptables-save | grep -E '^-A (KUBE|CNI|FLANNEL)|^:(KUBE|CNI|FLANNEL)' | sed 's/^/rule: /'
for p in /proc/[0-9]*; do
	exe=$(readlink "$p/exe" 2>/dev/null) || continue
	case "$exe" in *kubling*|*containerd*|*pause*) echo "process: $exe";; esac
done
true`
		if left := strings.TrimSpace(mustDocker(t, "exec", container(name), "sh", "-c", check)); left != "" {
			t.Errorf("%s still has kubling's state after uninstall:\n%s", name, left)
		}
	}
}

func dockerStdin(stdin string, args ...string) (string, error) {
	cmd := execCommand("docker", args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}
