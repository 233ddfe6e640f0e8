//go:build e2e && conformance

package multinode

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestConformance runs the upstream conformance suite (test/conformance/
// run.sh) against one server and two agents in containers, the multi-node
// shape of docs/conformance.md. `make conformance-multinode` builds the node
// image with the suite's images in its airgap folder and runs this; it is
// not part of `make test-multinode` (build tag conformance).
func TestConformance(t *testing.T) {
	image, results := os.Getenv("KUBLING_NODE_IMAGE"), os.Getenv("CONFORMANCE_RESULTS")
	if image == "" || results == "" {
		t.Fatal("KUBLING_NODE_IMAGE or CONFORMANCE_RESULTS is not set; run `make conformance-multinode`")
	}
	teardown(t)
	t.Cleanup(func() {
		for name := range nodes {
			out, _ := docker("logs", container(name))
			_ = os.WriteFile(filepath.Join(results, name+".log"), []byte(out), 0o644)
		}
		teardown(t)
	})
	serverURL, tok := startServer(t, image)
	for _, agent := range []string{"agent1", "agent2"} {
		runNode(t, image, agent, nil, "agent", "--server", serverURL, "--token", tok)
	}
	waitFor(t, "three Ready nodes", 5*time.Minute, func() error { return allReady(nil) })

	// The suite runs on this host, against the server's address on the
	// test network (in its serving certificate).
	kubeconfig := mustDocker(t, "exec", container("server"), "cat", "/etc/kubling/kubling.yaml")
	kubeconfig = strings.ReplaceAll(kubeconfig, "https://127.0.0.1:6443", serverURL)
	path := filepath.Join(results, "kubeconfig.yaml")
	if err := os.WriteFile(path, []byte(kubeconfig), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("../conformance/run.sh", results)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+path)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		t.Errorf("conformance: %v (results in %s)", err, results)
	}
}
