// Command agent measures `kubling agent`: time from exec to its node Ready,
// and the memory of the agent (kubling + containerd) after idling. It runs
// `kubling server --disable-agent` and one agent on this machine (they use
// different ports), joined through the server's token. It prints a table;
// it is a benchmark, not a test. KUBLING_AGENT_BIN, if set, runs the agent
// from another executable (an agent-only build, docs/benchmarks.md).
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
	bin, images := benchutil.BinAndImages("agent")
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
	// The server refuses a node on one of its own addresses (those its
	// serving certificate names, made at its first start): the agent gets an
	// address of its own, on a veth pair made now (this kernel has no dummy
	// interfaces).
	const agentIP = "10.254.254.1"
	for _, args := range [][]string{{"link", "add", "kubling-bench", "type", "veth", "peer", "name", "kubling-bench1"}, {"addr", "add", agentIP + "/32", "dev", "kubling-bench"}, {"link", "set", "kubling-bench1", "up"}, {"link", "set", "kubling-bench", "up"}} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			benchutil.Fatal(fmt.Sprintf("ip %v: %v: %s", args, err, out))
		}
	}
	defer exec.Command("ip", "link", "del", "kubling-bench").Run()
	tok, err := os.ReadFile(filepath.Join(serverDir, "server", "token"))
	benchutil.Must(err)

	r := benchutil.NewReport("agent", "kubling agent joined to a kubling server --disable-agent on the same machine")
	begin := time.Now()
	agentBin := bin
	if b := os.Getenv("KUBLING_AGENT_BIN"); b != "" {
		agentBin = b
	}
	agent := start(agentBin, filepath.Join(dir, "agent.log"), "agent", "--server", "https://127.0.0.1:6443", "--token", strings.TrimSpace(string(tok)), "--data-dir", agentDir, "--node-name", "bench-agent", "--node-ip", agentIP)
	defer stop(agent)
	benchutil.WaitFor("node Ready", func() bool { return benchutil.NodeReady(ctx, client, "bench-agent") })
	r.Add("agent: start to node Ready (cold)", time.Since(begin).Seconds(), "s", 6)
	benchutil.WaitFor("CoreDNS Ready", func() bool {
		d, err := client.AppsV1().Deployments("kube-system").Get(ctx, "coredns", metav1.GetOptions{})
		return err == nil && d.Status.ReadyReplicas >= 1
	})

	time.Sleep(*idle)
	kubling := benchutil.Process(agent.Pid)
	containerd, shims, pods := benchutil.NodeMemory(agentDir)
	r.MB("agent: kubling RSS", kubling.RSS, 0)
	r.MB("agent: kubling anonymous (heap, stacks)", kubling.Anon, 0)
	r.MB("agent: kubling file-backed (binary pages)", benchutil.Status(agent.Pid)["RssFile"], 0)
	r.MB("agent: kubling PSS", kubling.PSS, 0)
	r.MB("agent: containerd RSS", containerd.RSS, 0)
	r.MB("agent: kubling + containerd RSS", kubling.RSS+containerd.RSS, 120)
	r.MB("agent: kubling + containerd PSS", kubling.PSS+containerd.PSS, 0)
	r.MB("agent: runc shims RSS (CoreDNS pod)", shims.RSS, 0)
	r.MB("agent: pods' processes RSS (CoreDNS, pause)", pods.RSS, 0)
	r.MB("control plane alone (server --disable-agent) RSS", benchutil.RSSKB(server.Pid), 0)
	r.Print()
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
