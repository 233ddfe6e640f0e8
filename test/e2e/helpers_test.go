//go:build e2e

// Package e2e runs the built kubling binary for real, as root: start the
// server on a temporary data dir, use the embedded kubectl, stop, clean up.
package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kubling/kubling/test/testutil"
)

// bin is the kubling binary under test (make test-e2e sets KUBLING_BIN).
var bin string

// httpGetEnv makes the test binary an HTTP client for one URL (run inside
// a network namespace by netnsClient): it prints the body, exit 1 on error.
const httpGetEnv = "KUBLING_E2E_HTTP_GET"

func TestMain(m *testing.M) {
	if url := os.Getenv(httpGetEnv); url != "" {
		body, err := httpGet(url)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Print(body)
		os.Exit(0)
	}
	bin = os.Getenv("KUBLING_BIN")
	if bin == "" {
		fmt.Fprintln(os.Stderr, "KUBLING_BIN is not set: run the end-to-end tests through `make test-e2e`")
		os.Exit(2)
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "the end-to-end tests need root: run `sudo make test-e2e`")
		os.Exit(2)
	}
	os.Exit(m.Run())
}

// server is one `kubling server` process.
type server struct {
	t          *testing.T
	dataDir    string
	kubeconfig string
	agent      bool // run the node too (no --disable-agent)
	cmd        *exec.Cmd
	out        *testutil.LockedBuffer
	exited     chan struct{}
}

func newServer(t *testing.T) *server {
	dir := t.TempDir()
	return &server{t: t, dataDir: filepath.Join(dir, "data"), kubeconfig: filepath.Join(dir, "kubeconfig.yaml")}
}

// newNodeServer is a server with its node (not started), the busybox test
// image in its airgap folder, and kubling-killall.sh run at cleanup.
func newNodeServer(t *testing.T) *server {
	t.Helper()
	images := os.Getenv("KUBLING_TEST_IMAGES")
	if images == "" {
		t.Fatal("KUBLING_TEST_IMAGES is not set: run through `make test-e2e`")
	}
	s := newServer(t)
	s.agent = true
	airgap := filepath.Join(s.dataDir, "agent", "images")
	if err := os.MkdirAll(airgap, 0o755); err != nil {
		t.Fatal(err)
	}
	copyFile(t, filepath.Join(images, "busybox.tar"), filepath.Join(airgap, "busybox.tar"))
	t.Cleanup(func() { killall(t, s.dataDir) })
	return s
}

// start runs the server and waits for its "ready" line.
func (s *server) start(extra ...string) {
	s.t.Helper()
	s.startNoWait(extra...)
	s.waitReady()
}

// startNoWait runs the server.
func (s *server) startNoWait(extra ...string) {
	s.t.Helper()
	args := []string{"server", "--data-dir", s.dataDir, "--write-kubeconfig", s.kubeconfig}
	if !s.agent {
		args = append(args, "--disable-agent")
	}
	args = append(args, extra...)
	s.out = &testutil.LockedBuffer{}
	s.cmd = exec.Command(bin, args...)
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.exited = make(chan struct{})
	go func() { s.cmd.Wait(); close(s.exited) }()
	s.t.Cleanup(s.kill)
}

// waitReady waits for the running server's "ready" line.
func (s *server) waitReady() {
	s.t.Helper()
	deadline := time.After(3 * time.Minute)
	for !strings.Contains(s.out.String(), "kubling is ready") {
		select {
		case <-s.exited:
			s.t.Fatalf("server exited during start-up:\n%s", s.out)
		case <-deadline:
			s.t.Fatalf("server not ready after 3m:\n%s", s.out)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// stop sends SIGTERM and insists on a clean exit.
func (s *server) stop() {
	s.t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		s.t.Fatal(err)
	}
	select {
	case <-s.exited:
	case <-time.After(time.Minute):
		s.kill()
		s.t.Fatalf("server did not stop within 1m after SIGTERM:\n%s", s.out)
	}
	if code := s.cmd.ProcessState.ExitCode(); code != 0 {
		s.t.Fatalf("server exited with %d after SIGTERM:\n%s", code, s.out)
	}
}

func (s *server) kill() {
	if s.cmd != nil && s.cmd.ProcessState == nil {
		s.cmd.Process.Kill()
		<-s.exited
	}
}

// kubectl runs the embedded kubectl and fails the test on error.
func (s *server) kubectl(args ...string) string {
	s.t.Helper()
	out, err := s.tryKubectl(args...)
	if err != nil {
		s.t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (s *server) tryKubectl(args ...string) (string, error) {
	cmd := exec.Command(bin, append([]string{"kubectl", "--kubeconfig", s.kubeconfig}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out) + stderr.String(), err
	}
	return strings.TrimSpace(string(out)), nil
}

// eventually retries check until it returns "" (success) or time runs out,
// then fails the test at once.
func eventually(t *testing.T, timeout time.Duration, what string, check func() string) {
	t.Helper()
	if !soon(t, timeout, what, check) {
		t.FailNow()
	}
}

// soon is eventually that fails the test but lets it go on, so that each
// of several cases is seen to fail on its own; it says whether check passed.
func soon(t *testing.T, timeout time.Duration, what string, check func() string) bool {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		if last = check(); last == "" {
			return true
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Errorf("%s: not true after %s: %s", what, timeout, last)
	return false
}

// run executes kubling with args and returns its exit code and output.
func run(t *testing.T, cmd *exec.Cmd) (int, string) {
	t.Helper()
	out, err := cmd.CombinedOutput()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), string(out)
		}
		t.Fatal(err)
	}
	return 0, string(out)
}
