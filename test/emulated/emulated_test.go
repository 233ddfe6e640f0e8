//go:build e2e

// Package emulated runs kubling's arm64 and armv7 builds on this machine
// under Debian's qemu-user (`make test-arm`): the binary's version and
// check-config, every payload program's version, and a server without its
// node answering /readyz on SQLite. It needs root (the server) and the
// payload folder the build left (KUBLING_PAYLOAD_ROOT).
package emulated

import (
	"archive/tar"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kubling/kubling/test/testutil"
)

var bin, arch, payloadRoot, qemu string

// qemuFor names Debian's static qemu-user for each GOARCH kubling releases.
var qemuFor = map[string]string{"arm64": "qemu-aarch64-static", "arm": "qemu-arm-static"}

func TestMain(m *testing.M) {
	bin, arch, payloadRoot = os.Getenv("KUBLING_BIN"), os.Getenv("KUBLING_ARCH"), os.Getenv("KUBLING_PAYLOAD_ROOT")
	if bin == "" || qemuFor[arch] == "" || payloadRoot == "" {
		fmt.Fprintln(os.Stderr, "KUBLING_BIN, KUBLING_ARCH (arm64 or arm) and KUBLING_PAYLOAD_ROOT must be set: run `make test-arm`")
		os.Exit(2)
	}
	var err error
	if qemu, err = exec.LookPath(qemuFor[arch]); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v (make test-arm installs qemu-user-static)\n", qemuFor[arch], err)
		os.Exit(2)
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "the emulated tests need root (the server): run `sudo make test-arm`")
		os.Exit(2)
	}
	os.Exit(m.Run())
}

// emulated runs program (built for arch) with args under qemu-user.
func emulated(program string, args ...string) *exec.Cmd {
	return exec.Command(qemu, append([]string{program}, args...)...)
}

func TestVersion(t *testing.T) {
	out, err := emulated(bin, "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("--version: %v\n%s", err, out)
	}
	for _, want := range []string{"kubling", "kubernetes v1.37"} {
		if !strings.Contains(strings.ToLower(string(out)), want) {
			t.Errorf("--version lacks %q:\n%s", want, out)
		}
	}
}

func TestCheckConfig(t *testing.T) {
	out, err := emulated(bin, "check-config").CombinedOutput()
	if err != nil {
		t.Fatalf("check-config: %v\n%s", err, out)
	}
	for _, want := range []string{"OK    kernel: br_netfilter", "program: iptables", "port 6443"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("check-config lacks %q:\n%s", want, out)
		}
	}
}

// versionPattern finds a version number such as v2.4.2 or 1.5.2.
var versionPattern = regexp.MustCompile(`\bv?[0-9]+\.[0-9]+\.[0-9]+\b`)

// TestPayloadPrograms: every program of this architecture's payload runs
// and names its version; the images it ships are for this architecture.
func TestPayloadPrograms(t *testing.T) {
	versionArgs := map[string][]string{"containerd-shim-runc-v2": {"-v"}, "bridge": nil, "host-local": nil, "loopback": nil, "portmap": nil, "bandwidth": nil}
	programs, err := filepath.Glob(filepath.Join(payloadRoot, "bin", "*"))
	if err != nil || len(programs) < 9 {
		t.Fatalf("payload programs in %s: %v %v", payloadRoot, programs, err)
	}
	for _, p := range programs {
		name := filepath.Base(p)
		args, ok := versionArgs[name]
		if !ok {
			args = []string{"--version"}
		}
		out, _ := emulated(p, args...).CombinedOutput() // CNI plugins exit 1 after printing their version
		if v := versionPattern.FindString(string(out)); v == "" {
			t.Errorf("%s %s printed no version:\n%s", name, strings.Join(args, " "), out)
		} else {
			t.Logf("%s: %s", name, v)
		}
	}
	// ctr is containerd's executable under that name (payload/cmd/containerd).
	ctrOut, err := exec.Command(qemu, "-0", "ctr", filepath.Join(payloadRoot, "bin", "containerd"), "--version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(ctrOut), "ctr ") || versionPattern.FindString(string(ctrOut)) == "" {
		t.Errorf("containerd run as ctr --version: %v\n%s", err, ctrOut)
	} else {
		t.Logf("ctr: %s", strings.TrimSpace(string(ctrOut)))
	}
	ipt := filepath.Join(payloadRoot, "iptables")
	loaders, _ := filepath.Glob(filepath.Join(ipt, "lib", "ld-*.so*"))
	if len(loaders) != 1 {
		t.Fatalf("iptables loaders: %v", loaders)
	}
	for _, mode := range []string{"nft", "legacy"} {
		cmd := emulated(loaders[0], "--library-path", filepath.Join(ipt, "lib"), "--argv0", "iptables", filepath.Join(ipt, "sbin", "xtables-"+mode+"-multi"), "--version")
		cmd.Env = append(os.Environ(), "XTABLES_LIBDIR="+filepath.Join(ipt, "xtables"))
		out, err := cmd.CombinedOutput()
		switch {
		case err == nil && strings.HasPrefix(string(out), "iptables v1."):
			t.Logf("iptables %s: %s", mode, strings.TrimSpace(string(out)))
		case mode == "nft" && strings.Contains(string(out), "Failed to initialize nft: Protocol not supported"):
			// qemu-user does not translate netfilter's netlink sockets, and
			// the nft variant opens one even for --version: it ran (its
			// libraries loaded, its main reached), which is what is checked.
			t.Logf("iptables %s: ran; its netlink socket is not emulated: %s", mode, strings.TrimSpace(string(out)))
		default:
			t.Errorf("bundled iptables (%s) --version: %v\n%s", mode, err, out)
		}
	}
	images, _ := filepath.Glob(filepath.Join(payloadRoot, "images", "*.tar"))
	if len(images) < 2 {
		t.Errorf("payload images: %v, want pause and CoreDNS", images)
	}
	for _, image := range images {
		if got := imageArch(t, image); got != arch {
			t.Errorf("%s: image architecture %q, want %q", filepath.Base(image), got, arch)
		}
	}
	// CoreDNS, as built before it was packed into its image (beside root/).
	out, err := emulated(filepath.Join(filepath.Dir(payloadRoot), "coredns"), "-version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "CoreDNS-1.") {
		t.Errorf("coredns -version: %v\n%s", err, out)
	} else {
		t.Logf("coredns: %s", strings.TrimSpace(string(out)))
	}
}

// imageArch reads an image archive's config and returns its architecture.
func imageArch(t *testing.T, archive string) string {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	files := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(h.Name, ".json") || !strings.Contains(h.Name, "/") {
			b, _ := io.ReadAll(tr)
			files[h.Name] = b
		}
	}
	var manifest []struct{ Config string }
	if err := json.Unmarshal(files["manifest.json"], &manifest); err != nil || len(manifest) != 1 {
		t.Fatalf("%s: manifest.json: %v", archive, err)
	}
	var config struct{ Architecture string }
	if err := json.Unmarshal(files[manifest[0].Config], &config); err != nil {
		t.Fatalf("%s: config %s: %v", archive, manifest[0].Config, err)
	}
	return config.Architecture
}

// TestServerReadyz: the control plane alone, on SQLite, under emulation
// (slow: the wait is generous), answers /readyz and stops on SIGTERM.
func TestServerReadyz(t *testing.T) {
	dir := t.TempDir()
	kubeconfig := filepath.Join(dir, "kubeconfig.yaml")
	out := &testutil.LockedBuffer{}
	begin := time.Now()
	cmd := emulated(bin, "server", "--disable-agent", "--data-dir", filepath.Join(dir, "data"), "--write-kubeconfig", kubeconfig)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-exited
		}
	}()
	deadline := time.After(10 * time.Minute)
	for !strings.Contains(out.String(), "kubling is ready") {
		select {
		case <-exited:
			t.Fatalf("server exited during start-up:\n%s", out)
		case <-deadline:
			t.Fatalf("server not ready after 10m under emulation:\n%s", out)
		case <-time.After(time.Second):
		}
	}
	t.Logf("%s server ready under emulation after %s", arch, time.Since(begin).Round(time.Second))
	ready, err := emulated(bin, "kubectl", "--kubeconfig", kubeconfig, "get", "--raw", "/readyz").CombinedOutput()
	if err != nil || strings.TrimSpace(string(ready)) != "ok" {
		t.Errorf("/readyz: %v %s", err, ready)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(2 * time.Minute):
		t.Fatalf("server did not stop within 2m after SIGTERM:\n%s", out)
	}
	if code := cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("server exited with %d after SIGTERM:\n%s", code, out)
	}
}
