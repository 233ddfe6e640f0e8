// Command agent measures `kubling agent`: time from exec to its node Ready,
// and the memory of the agent (kubling + containerd) after idling. It runs
// `kubling server --disable-agent` and one agent on this machine (they use
// different ports), joined through the server's token. It prints a table;
// it is a benchmark, not a test.
//
//	KUBLING_BIN=bin/kubling KUBLING_TEST_IMAGES=build/test-images go run ./test/bench/agent
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubling/kubling/test/bench/benchutil"
)

func main() {
	idle := flag.Duration("idle", 60*time.Second, "idle time before reading memory")
	flag.Parse()
	bin, images := os.Getenv("KUBLING_BIN"), os.Getenv("KUBLING_TEST_IMAGES")
	if bin == "" || images == "" {
		benchutil.Fatal("KUBLING_BIN and KUBLING_TEST_IMAGES must be set (run `make bench-agent`)")
	}
	if os.Geteuid() != 0 {
		benchutil.Fatal("the benchmark starts kubling and needs root")
	}
	dir, err := os.MkdirTemp("", "kubling-bench-agent-")
	benchutil.Must(err)
	serverDir, agentDir := filepath.Join(dir, "server"), filepath.Join(dir, "agent")
	defer func() { benchutil.Killall(agentDir); os.RemoveAll(dir) }()
	// The server runs no node; CoreDNS lands on the agent.
	benchutil.CopyImages(images, agentDir, "busybox.tar")

	server := start(bin, filepath.Join(dir, "server.log"), "server", "--disable-agent", "--data-dir", serverDir, "--write-kubeconfig", filepath.Join(dir, "kubeconfig.yaml"))
	defer stop(server)
	client := benchutil.WaitClient(filepath.Join(serverDir, "server", "cred", "admin.kubeconfig"))
	ctx := context.Background()
	benchutil.WaitFor("server ready", func() bool {
		_, err := client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		return err == nil
	})
	tok, err := os.ReadFile(filepath.Join(serverDir, "server", "token"))
	benchutil.Must(err)

	var rows [][2]string
	begin := time.Now()
	agent := start(bin, filepath.Join(dir, "agent.log"), "agent", "--server", "https://127.0.0.1:6443", "--token", strings.TrimSpace(string(tok)), "--data-dir", agentDir, "--node-name", "bench-agent")
	defer stop(agent)
	benchutil.WaitFor("node Ready", func() bool { return benchutil.NodeReady(ctx, client, "bench-agent") })
	rows = append(rows, [2]string{"agent start to node Ready", benchutil.Secs(time.Since(begin))})
	benchutil.WaitFor("CoreDNS Ready", func() bool {
		d, err := client.AppsV1().Deployments("kube-system").Get(ctx, "coredns", metav1.GetOptions{})
		return err == nil && d.Status.ReadyReplicas >= 1
	})

	time.Sleep(*idle)
	mem := benchutil.Status(agent.Pid)
	kubling := mem["VmRSS"]
	containerd, shims := benchutil.PayloadRSS(agentDir)
	rows = append(rows,
		[2]string{fmt.Sprintf("agent kubling RSS after %s idle", *idle), benchutil.MB(kubling)},
		[2]string{"of which anonymous (heap, stacks)", benchutil.MB(mem["RssAnon"])},
		[2]string{"of which file-backed (binary pages)", benchutil.MB(mem["RssFile"])},
		[2]string{"agent containerd RSS", benchutil.MB(containerd)},
		[2]string{"agent kubling + containerd", benchutil.MB(kubling + containerd)},
		[2]string{"runc shims RSS (CoreDNS pod)", benchutil.MB(shims)},
		[2]string{"server (control plane only) RSS", benchutil.MB(benchutil.RSSKB(server.Pid))},
	)
	benchutil.Table("kubling agent joined to a kubling server --disable-agent on the same machine", rows)
}

func start(bin, logPath string, args ...string) *os.Process {
	log, err := os.Create(logPath)
	benchutil.Must(err)
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	benchutil.Must(cmd.Start())
	return cmd.Process
}

func stop(p *os.Process) {
	_ = p.Signal(syscall.SIGTERM)
	_, _ = p.Wait()
}
