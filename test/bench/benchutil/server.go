package benchutil

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Server is a running `kubling server` with its node.
type Server struct {
	PID    int
	Client kubernetes.Interface
	// Kubectl runs kubling's kubectl against it.
	Kubectl func(args ...string) (string, error)
}

// StartServer runs kubling server on a fresh data dir (the busybox test
// image in its airgap folder), waits for its node and CoreDNS to be Ready,
// and returns it and what stops it and removes its data.
func StartServer(bin, images, bench string, extra ...string) (*Server, func()) {
	dir, err := os.MkdirTemp("", "kubling-bench-"+bench+"-")
	Must(err)
	dataDir := filepath.Join(dir, "data")
	CopyImages(images, dataDir, "busybox.tar")
	log, err := os.Create(filepath.Join(dir, "server.log"))
	Must(err)
	kubeconfig := filepath.Join(dir, "kubeconfig.yaml")
	cmd := exec.Command(bin, append([]string{"server", "--data-dir", dataDir, "--write-kubeconfig", kubeconfig}, extra...)...)
	cmd.Stdout, cmd.Stderr = log, log
	Must(cmd.Start())
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		Killall(dataDir)
		os.RemoveAll(dir)
	}
	client := WaitClient(filepath.Join(dataDir, "server", "cred", "admin.kubeconfig"))
	ctx := context.Background()
	WaitFor("node Ready", func() bool { return NodeReady(ctx, client, "") })
	WaitFor("CoreDNS Ready", func() bool {
		d, err := client.AppsV1().Deployments("kube-system").Get(ctx, "coredns", metav1.GetOptions{})
		return err == nil && d.Status.ReadyReplicas >= 1
	})
	kubectl := func(args ...string) (string, error) {
		out, err := exec.Command(bin, append([]string{"kubectl", "--kubeconfig", kubeconfig}, args...)...).CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	return &Server{PID: cmd.Process.Pid, Client: client, Kubectl: kubectl}, stop
}

// BinAndImages returns $KUBLING_BIN and $KUBLING_TEST_IMAGES, which the
// benchmarks that start kubling need (with root), or gives up the run.
func BinAndImages(bench string) (bin, images string) {
	bin, images = os.Getenv("KUBLING_BIN"), os.Getenv("KUBLING_TEST_IMAGES")
	if bin == "" || images == "" {
		Fatal("KUBLING_BIN and KUBLING_TEST_IMAGES must be set (run `make bench-" + bench + "`)")
	}
	if os.Geteuid() != 0 {
		Fatal("the benchmark starts kubling and needs root")
	}
	return bin, images
}
