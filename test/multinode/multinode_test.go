//go:build e2e

// Package multinode is the multi-node end-to-end test: one `kubling server`
// and two `kubling agent`s as containers on a private Docker network (see
// Dockerfile.test and docs/testing.md). Run by `make test-multinode`, as root.
package multinode

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kubling/kubling/pkg/token"
)

const (
	network = "kubling-test"
	subnet  = "172.30.99.0/24"
	label   = "kubling-test=1"
)

// Nodes: name → address on the test network.
var nodes = map[string]string{"server": "172.30.99.10", "agent1": "172.30.99.11", "agent2": "172.30.99.12"}

// webWorkload is a namespace and a Deployment of web servers (busybox
// httpd answering with the pod's name on 8080, and with the client's
// address at /cgi-bin/ip) spread evenly over the nodes.
func webWorkload(namespace string, replicas int) string {
	return `apiVersion: v1
kind: Namespace
metadata: {name: ` + namespace + `}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: ` + namespace + `}
spec:
  replicas: ` + fmt.Sprint(replicas) + `
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      topologySpreadConstraints:
      - {maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: DoNotSchedule, labelSelector: {matchLabels: {app: web}}}
      containers:
      - name: web
        image: kubling.test/busybox:1
        imagePullPolicy: Never
        command: ["sh", "-c", "mkdir -p /www/cgi-bin && hostname > /www/index.html && printf '#!/bin/sh\\necho Content-Type: text/plain\\necho\\necho $REMOTE_ADDR\\n' > /www/cgi-bin/ip && chmod +x /www/cgi-bin/ip && exec httpd -f -p 8080 -h /www"]
        readinessProbe: {httpGet: {path: /, port: 8080}, periodSeconds: 1}
`
}

// workload is TestMultiNode's: web pods, two Services and a client on
// every node.
var workload = webWorkload("mn", 6) + `---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: mn}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: web-nodeport, namespace: mn}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080, nodePort: 30080}]
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: client, namespace: mn}
spec:
  selector: {matchLabels: {app: client}}
  template:
    metadata: {labels: {app: client}}
    spec:
      containers:
      - name: client
        image: kubling.test/busybox:1
        imagePullPolicy: Never
        command: ["sleep", "100000"]
`

func TestMultiNode(t *testing.T) {
	image := setUp(t, "server", "agent1", "agent2")
	// One server, then two agents: one with flags, one from the environment.
	serverURL, tok := startServer(t, image)
	agentTok := strings.TrimSpace(mustDocker(t, "exec", container("server"), "cat", "/var/lib/kubling/server/agent-token"))
	// The log says how to join and where the agent token is, never a token.
	secret, agentSecret := strings.SplitN(tok, "::", 2)[1], strings.SplitN(agentTok, "::", 2)[1]
	if logs, _ := docker("logs", container("server")); !strings.Contains(logs, "kubling agent --server "+serverURL+" --token-file <a copy of /var/lib/kubling/server/agent-token>") ||
		strings.Contains(logs, secret) || strings.Contains(logs, agentSecret) {
		t.Errorf("the server's log lacks the agent command or shows a token's secret")
	}
	if hash := strings.SplitN(tok, "::", 2)[0]; !strings.HasPrefix(agentTok, hash+"::") || agentSecret == secret {
		t.Errorf("agent token %q: want the server token's CA hash and a secret of its own", agentTok)
	}
	// agent1 joins with the agent token; agent2 with the server token, as
	// agents of clusters made before the agent token did: it still works,
	// and the server says to use the agent token.
	runNode(t, image, "agent1", nil, "agent", "--server", serverURL, "--token", agentTok, "--node-label", "mn/role=worker")
	runNode(t, image, "agent2", []string{"KUBLING_URL=" + serverURL, "KUBLING_TOKEN=" + tok}, "agent")
	agentsStarted := time.Now()
	waitFor(t, "three Ready nodes", 3*time.Minute, func() error { return allReady(nil) })
	if logs, _ := docker("logs", container("server")); !strings.Contains(logs, `this node joined with the server token`) || !strings.Contains(logs, `node="agent2"`) ||
		strings.Contains(logs, `this node joined with the server token, which also joins servers and opens the cluster's keys: give agents the agent token instead, then rotate the server token (kubling token rotate)" node="agent1"`) {
		t.Errorf("the server does not warn of agent2's join with the server token (or warns of agent1's)")
	}
	stolenAgent(t, image, serverURL, "agent1", secret, agentTok)
	// The agents' load balancers follow the kubernetes endpoints (the
	// server's advertised address).
	for _, agent := range []string{"agent1", "agent2"} {
		waitFor(t, agent+" following the kubernetes endpoints", time.Minute, func() error {
			logs, _ := docker("logs", container(agent))
			if !strings.Contains(logs, "Load balancer follows the kubernetes endpoints") || !strings.Contains(logs, `endpoints=["`+strings.TrimPrefix(serverURL, "https://")+`"]`) {
				return fmt.Errorf("no such line in its log")
			}
			return nil
		})
	}
	if out, _ := kubectl("get", "node", "agent1", "-o", "jsonpath={.metadata.labels.mn/role}"); out != "worker" {
		t.Errorf("agent1's --node-label: got %q", out)
	}
	if out, err := kubectl("get", "csr", "-o", "name"); err != nil || strings.TrimSpace(out) != "" {
		t.Errorf("certificate signing requests were made: %q %v", out, err)
	}

	// Workloads spread over every node.
	apply(t, workload)
	waitFor(t, "6 web pods Ready, 2 per node, and a client on every node", 4*time.Minute, func() error {
		web, err := pods("app=web")
		if err != nil {
			return err
		}
		clients, err := pods("app=client")
		if err != nil {
			return err
		}
		perNode := map[string]int{}
		for _, p := range web {
			if p.ready() {
				perNode[p.node]++
			}
		}
		readyClients := 0
		for _, p := range clients {
			if p.ready() {
				readyClients++
			}
		}
		for name := range nodes {
			if perNode[name] != 2 {
				return fmt.Errorf("web pods Ready per node: %v", perNode)
			}
		}
		if readyClients != 3 {
			return fmt.Errorf("%d of 3 clients Ready", readyClients)
		}
		return nil
	})
	web, _ := pods("app=web")
	clients, _ := pods("app=client")

	// Pod to pod across nodes (VXLAN): every client reaches a web pod on
	// every other node.
	for _, c := range clients {
		for _, w := range web {
			if w.node == c.node {
				continue
			}
			got, err := execIn(c.name, "timeout", "5", "wget", "-qO-", "http://"+w.ip+":8080/")
			if err != nil || strings.TrimSpace(got) != w.name {
				t.Errorf("pod on %s → pod %s on %s: %q %v", c.node, w.name, w.node, got, err)
			}
		}
	}

	// The ClusterIP Service from every node's pods, and its DNS name from
	// an agent's pod.
	clusterIP, err := kubectl("get", "svc", "-n", "mn", "web", "-o", "jsonpath={.spec.clusterIP}")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range clients {
		got, err := execIn(c.name, "timeout", "5", "wget", "-qO-", "http://"+clusterIP+"/")
		if err != nil || !strings.HasPrefix(strings.TrimSpace(got), "web-") {
			t.Errorf("ClusterIP from a pod on %s: %q %v", c.node, got, err)
		}
		if c.node == "agent2" {
			waitFor(t, "DNS from agent2's pod", time.Minute, func() error {
				got, err := execIn(c.name, "nslookup", "web.mn.svc.cluster.local", "10.43.0.10")
				if err != nil || !strings.Contains(got, clusterIP) {
					return fmt.Errorf("nslookup: %q %v", got, err)
				}
				return nil
			})
		}
	}

	// The NodePort answers on every node's IP.
	for name, ip := range nodes {
		got, err := httpGet("http://" + ip + ":30080/")
		if err != nil || !strings.HasPrefix(got, "web-") {
			t.Errorf("NodePort on %s (%s): %q %v", name, ip, got, err)
		}
	}

	loadBalancer(t, web)
	behindNAT(t, web)
	agentVolume(t)
	crossNodePolicy(t, web, clients)
	smallDevices(t, agentsStarted)

	// Restart the server: the agents' pods keep running meanwhile, and the
	// agents reconnect on their own.
	before := containerIDs(t, "agent1", "agent2")
	restarted := time.Now()
	mustDocker(t, "restart", "-t", "30", container("server"))
	waitFor(t, "the server to be ready again", 3*time.Minute, func() error {
		_, err := kubectl("get", "--raw", "/readyz")
		return err
	})
	waitFor(t, "every node to renew its lease after the server restart", 2*time.Minute, func() error { return allReady(&restarted) })
	if got := strings.TrimSpace(mustDocker(t, "exec", container("server"), "cat", "/var/lib/kubling/server/agent-token")); got != agentTok {
		t.Errorf("the agent token changed across a restart")
	}
	if after := containerIDs(t, "agent1", "agent2"); strings.Join(after, ",") != strings.Join(before, ",") {
		t.Errorf("the agents' containers changed across the server restart:\nbefore %v\nafter  %v", before, after)
	}

	// Restart an agent while the server is down: it starts from the
	// credentials of its last join, and its node returns Ready, with its
	// pods, once the server is back.
	mustDocker(t, "stop", "-t", "30", container("server"))
	restarted = time.Now()
	mustDocker(t, "restart", "-t", "30", container("agent1"))
	waitFor(t, "agent1 to start while the server is down", 2*time.Minute, func() error {
		logs, _ := docker("logs", "--since", restarted.Add(-time.Second).UTC().Format(time.RFC3339), container("agent1"))
		if !strings.Contains(logs, "starting with the credentials of the last join") {
			return fmt.Errorf("agent1 has not said so yet")
		}
		return nil
	})
	mustDocker(t, "start", container("server"))
	waitFor(t, "agent1 Ready again with its pods", 3*time.Minute, func() error {
		if err := allReady(&restarted); err != nil {
			return err
		}
		web, err := pods("app=web")
		if err != nil {
			return err
		}
		n := 0
		for _, p := range web {
			if p.node == "agent1" && p.ready() {
				n++
			}
		}
		if n != 2 {
			return fmt.Errorf("%d web pods Ready on agent1", n)
		}
		return nil
	})

	// Refusals: a wrong token, and a second machine taking a used node name
	// (with an extra token from `kubling token create`, so that token is
	// accepted first).
	hash := strings.SplitN(strings.TrimPrefix(tok, "KL1"), "::", 2)[0]
	out, err := runOnce(image, "agent3", "agent", "--server", serverURL, "--token", "KL1"+hash+"::abcdef.0123456789abcdef")
	if err == nil || !strings.Contains(out, "rejected the token") {
		t.Errorf("wrong token: %v\n%s", err, out)
	}
	extra := strings.TrimSpace(mustDocker(t, "exec", container("server"), "kubling", "token", "create", "--ttl", "10m", "--description", "multinode test"))
	if list := mustDocker(t, "exec", container("server"), "kubling", "token", "list"); !strings.Contains(list, "multinode test") {
		t.Errorf("token list lacks the new token:\n%s", list)
	}
	out, err = runOnce(image, "agent3", "agent", "--server", serverURL, "--token", extra, "--node-name", "agent2")
	if err == nil || !strings.Contains(out, `node name "agent2" is already used by another machine`) {
		t.Errorf("taken node name: %v\n%s", err, out)
	}
	id := strings.SplitN(strings.SplitN(extra, "::", 2)[1], ".", 2)[0]
	mustDocker(t, "exec", container("server"), "kubling", "token", "delete", id)
	// The apiserver caches a token's authentication for a few seconds.
	waitFor(t, "the deleted token to be refused", time.Minute, func() error {
		return refused(serverURL, strings.SplitN(extra, "::", 2)[1])
	})
	out, err = runOnce(image, "agent3", "agent", "--server", serverURL, "--token", extra)
	if err == nil || !strings.Contains(out, "rejected the token") {
		t.Errorf("deleted token: %v\n%s", err, out)
	}

	// Rotation: the durable token gets a new secret, the same CA hash; the
	// old one is refused, the new one accepted, joined nodes stay Ready.
	sealed := func() int {
		logs, _ := docker("logs", container("server"))
		return strings.Count(logs, "Stored the cluster keys in the datastore, sealed with the token")
	}
	sealedBefore := sealed()
	mustDocker(t, "exec", container("server"), "kubling", "token", "rotate")
	// The running server reseals the cluster keys under the new token.
	waitFor(t, "the cluster keys resealed after the rotation", 30*time.Second, func() error {
		if n := sealed(); n <= sealedBefore {
			return fmt.Errorf("sealed %d times, as before", n)
		}
		return nil
	})
	rotated := strings.TrimSpace(mustDocker(t, "exec", container("server"), "cat", "/var/lib/kubling/server/token"))
	if rotated == tok || !strings.HasPrefix(rotated, "KL1"+hash+"::") {
		t.Errorf("rotated token %q (was %q)", rotated, tok)
	}
	waitFor(t, "the old durable token to be refused", time.Minute, func() error {
		return refused(serverURL, bootstrapToken(t, tok))
	})
	if err := refused(serverURL, bootstrapToken(t, rotated)); err == nil {
		t.Error("the rotated token is refused")
	}
	if err := allReady(nil); err != nil {
		t.Errorf("after rotating the token: %v", err)
	}

	// The agent token: durable, listed, not deleted by `token delete`;
	// rotated, the old one is refused and the new one joins.
	agentID := strings.SplitN(agentSecret, ".", 2)[0]
	if list := mustDocker(t, "exec", container("server"), "kubling", "token", "list"); !strings.Contains(list, agentID) || !strings.Contains(list, "kubling agent token") {
		t.Errorf("token list lacks the agent token %s:\n%s", agentID, list)
	}
	if out, err := docker("exec", container("server"), "kubling", "token", "delete", agentID); err == nil || !strings.Contains(out, "kubling token rotate --agent") {
		t.Errorf("token delete of the agent token: %v\n%s", err, out)
	}
	mustDocker(t, "exec", container("server"), "kubling", "token", "rotate", "--agent")
	rotatedAgent := strings.TrimSpace(mustDocker(t, "exec", container("server"), "cat", "/var/lib/kubling/server/agent-token"))
	if rotatedAgent == agentTok || !strings.HasPrefix(rotatedAgent, "KL1"+hash+"::") {
		t.Errorf("rotated agent token %q (was %q)", rotatedAgent, agentTok)
	}
	waitFor(t, "the old agent token to be refused", time.Minute, func() error {
		return refused(serverURL, agentSecret)
	})
	if err := refused(serverURL, strings.SplitN(rotatedAgent, "::", 2)[1]); err == nil {
		t.Error("the rotated agent token is refused")
	}
}

// stolenAgent checks what a stolen agent yields: nothing in its files,
// environment or process arguments holds the server token's secret, and
// the token it does hold cannot join a server.
func stolenAgent(t *testing.T, image, serverURL, agent, serverSecret, agentTok string) {
	t.Helper()
	// The secret comes on stdin into an unexported variable, so the
	// searching shell's own environment does not hold it.
	search := func(secret string) string {
		script := `read -r S; grep -rlF -e "$S" /var/lib/kubling /etc /run 2>/dev/null; for p in /proc/[0-9]*; do [ "$p" = /proc/$$ ] && continue; cat $p/environ 2>/dev/null | tr '\0' '\n' | grep -qF -e "$S" && echo "$p/environ"; cat $p/cmdline 2>/dev/null | tr '\0' ' ' | grep -qF -e "$S" && echo "$p/cmdline"; done; true`
		cmd := exec.Command("docker", "exec", "-i", container(agent), "sh", "-c", script)
		cmd.Stdin = strings.NewReader(secret + "\n")
		out, err := runWithTimeout(cmd, 3*time.Minute)
		if err != nil {
			t.Fatalf("search %s: %v: %s", agent, err, out)
		}
		return out
	}
	if out := search(serverSecret); strings.TrimSpace(out) != "" {
		t.Errorf("%s holds the server token's secret in:\n%s", agent, out)
	}
	// Control: the same search finds the agent token it runs with.
	if out := search(strings.SplitN(agentTok, "::", 2)[1]); !strings.Contains(out, "/cmdline") {
		t.Errorf("the search for a secret in %s does not find the agent token it runs with: %q", agent, out)
	}
	if out, err := runOnce(image, "agent3", "server", "--server", serverURL, "--token", agentTok); err == nil || !strings.Contains(out, "this token joins agents only") {
		t.Errorf("a server join with the agent token: %v\n%s", err, out)
	}
}

// bootstrapToken is the upstream bootstrap token (id.secret) behind a
// kubling join token.
func bootstrapToken(t *testing.T, joinToken string) string {
	t.Helper()
	parsed, err := token.Parse(joinToken)
	if err != nil {
		t.Fatal(err)
	}
	id, secret := parsed.Bootstrap()
	return id + "." + secret
}

// startServer creates the test network and runs the server node on it, and
// returns its URL and join token once its apiserver is ready.
func startServer(t *testing.T, image string) (serverURL, tok string) {
	t.Helper()
	mustDocker(t, "network", "create", "--subnet", subnet, "--label", label, network)
	runNode(t, image, "server", nil, "server")
	waitFor(t, "the server to be ready", 3*time.Minute, func() error {
		_, err := kubectl("get", "--raw", "/readyz")
		return err
	})
	tok = strings.TrimSpace(mustDocker(t, "exec", container("server"), "cat", "/var/lib/kubling/server/token"))
	return "https://" + nodes["server"] + ":6443", tok
}

func container(name string) string { return "kubling-test-" + name }

// memoryLimits are the small devices kubling must fit (issue 22): a server
// with its node in 1 GB, an agent in 512 MB. The limit holds kubling,
// containerd and the shims; the pods' own cgroups lie under each kubelet's
// cgroup root, outside the container's.
var memoryLimits = map[string]string{"server": "1g", "agent1": "512m", "agent2": "512m"}

// smallDevices puts ten more pods on agent1, lets the nodes idle until five
// minutes after the agents started, and checks that nothing in the
// memory-limited node containers was OOM-killed, logging each one's peak.
func smallDevices(t *testing.T, agentsStarted time.Time) {
	t.Helper()
	apply(t, `apiVersion: apps/v1
kind: Deployment
metadata: {name: ten, namespace: mn}
spec:
  replicas: 10
  selector: {matchLabels: {app: ten}}
  template:
    metadata: {labels: {app: ten}}
    spec:
      nodeSelector: {kubernetes.io/hostname: agent1}
      containers:
      - {name: c, image: kubling.test/busybox:1, imagePullPolicy: Never, command: ["sleep", "100000"]}
`)
	waitFor(t, "ten pods Running on agent1", 3*time.Minute, func() error {
		ten, err := pods("app=ten")
		if err != nil {
			return err
		}
		n := 0
		for _, p := range ten {
			if p.ready() {
				n++
			}
		}
		if n != 10 {
			return fmt.Errorf("%d of 10 Ready", n)
		}
		return nil
	})
	if rest := 5*time.Minute - time.Since(agentsStarted); rest > 0 {
		t.Logf("idling %s (five minutes since the agents started)", rest.Round(time.Second))
		time.Sleep(rest)
	}
	for name, limit := range memoryLimits {
		id := strings.TrimSpace(mustDocker(t, "inspect", "-f", "{{.Id}}", container(name)))
		cg := "/sys/fs/cgroup/memory/docker/" + id
		oom, err := os.ReadFile(cg + "/memory.oom_control")
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		peak, _ := os.ReadFile(cg + "/memory.max_usage_in_bytes")
		now, _ := os.ReadFile(cg + "/memory.usage_in_bytes")
		mb := func(b []byte) string {
			n, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
			return fmt.Sprintf("%d MB", n>>20)
		}
		t.Logf("%s (limit %s): memory now %s, peak %s (cgroup usage, page cache included)", name, limit, mb(now), mb(peak))
		if !strings.Contains(string(oom), "oom_kill 0") {
			t.Errorf("%s (limit %s): a process was OOM-killed:\n%s", name, limit, oom)
		}
	}
	if out, _ := kubectl("get", "pods", "-A", "-o", `jsonpath={range .items[*]}{.metadata.name}{" "}{.status.containerStatuses[*].lastState.terminated.reason}{"\n"}{end}`); strings.Contains(out, "OOMKilled") {
		t.Errorf("pods were OOM-killed:\n%s", out)
	}
}

var execCommand = exec.Command

// nodeFlags are the container options that work on these machines, whose
// bounding set lacks CAP_SYS_RESOURCE (docs/testing.md): no --privileged, all capabilities but CAP_SYS_RESOURCE, the
// host's cgroup tree, writable /proc/sys for the node's sysctls.
func nodeFlags(name string) []string {
	flags := []string{
		"--name", container(name), "--hostname", name, "--label", label,
		"--network", network, "--ip", address(name),
		"--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE",
		"--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined", "--security-opt", "systempaths=unconfined",
		"--cgroupns", "host", "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
		"--tmpfs", "/run:rw,exec,size=256m", "--tmpfs", "/tmp:rw,exec",
		"--device", "/dev/kmsg",
	}
	if m, ok := memoryLimits[name]; ok {
		flags = append(flags, "--memory", m, "--memory-swap", m)
	}
	return flags
}

// address is a node's address on the test network.
func address(name string) string {
	if ip, ok := nodes[name]; ok {
		return ip
	}
	return haNodes[name]
}

func runNode(t *testing.T, image, name string, env []string, args ...string) {
	t.Helper()
	a := append([]string{"run", "-d"}, nodeFlags(name)...)
	for _, e := range env {
		a = append(a, "-e", e)
	}
	mustDocker(t, append(append(a, image), args...)...)
}

// runOnce runs a node container that is expected to exit, and returns its output.
func runOnce(image, name string, args ...string) (string, error) {
	flags := nodeFlags(name)
	flags = slicesDelete(flags, "--ip") // not one of the three nodes
	a := append(append([]string{"run", "--rm"}, flags...), image)
	cmd := exec.Command("docker", append(a, args...)...)
	out, err := runWithTimeout(cmd, 2*time.Minute)
	return out, err
}

func slicesDelete(flags []string, flag string) []string {
	for i, f := range flags {
		if f == flag {
			return append(flags[:i:i], flags[i+2:]...)
		}
	}
	return flags
}

func runWithTimeout(cmd *exec.Cmd, d time.Duration) (string, error) {
	var buf strings.Builder
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Start(); err != nil {
		return "", err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return buf.String(), err
	case <-time.After(d):
		_ = cmd.Process.Kill()
		return buf.String(), fmt.Errorf("%v: timed out after %s", cmd.Args, d)
	}
}

func docker(args ...string) (string, error) {
	out, err := runWithTimeout(exec.Command("docker", args...), 3*time.Minute)
	if err != nil {
		return out, fmt.Errorf("docker %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(out))
	}
	return out, nil
}

func mustDocker(t *testing.T, args ...string) string {
	t.Helper()
	out, err := docker(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// kubectl runs the server's embedded kubectl (admin kubeconfig).
func kubectl(args ...string) (string, error) {
	var stdout, stderr strings.Builder
	cmd := exec.Command("docker", append([]string{"exec", container("server"), "kubling", "kubectl"}, args...)...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

func apply(t *testing.T, manifest string) {
	t.Helper()
	cmd := exec.Command("docker", "exec", "-i", container("server"), "kubling", "kubectl", "apply", "-f", "-")
	cmd.Stdin = strings.NewReader(manifest)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("apply: %v: %s", err, out)
	}
}

func execIn(pod string, args ...string) (string, error) {
	return kubectl(append([]string{"exec", "-n", "mn", pod, "--"}, args...)...)
}

type pod struct {
	name, node, ip string
	readyCond      bool
}

func (p pod) ready() bool { return p.readyCond }

func pods(selector string) ([]pod, error) {
	out, err := kubectl("get", "pods", "-n", "mn", "-l", selector, "-o", "json")
	if err != nil {
		return nil, err
	}
	var list struct {
		Items []struct {
			Metadata struct{ Name string }
			Spec     struct{ NodeName string }
			Status   struct {
				PodIP      string
				Conditions []struct{ Type, Status string }
			}
		}
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		return nil, err
	}
	var res []pod
	for _, i := range list.Items {
		p := pod{name: i.Metadata.Name, node: i.Spec.NodeName, ip: i.Status.PodIP}
		for _, c := range i.Status.Conditions {
			if c.Type == "Ready" && c.Status == "True" {
				p.readyCond = true
			}
		}
		res = append(res, p)
	}
	return res, nil
}

// allReady checks that the three nodes are Ready and, with since, that each
// renewed its lease after that time (its kubelet reached the server again).
func allReady(since *time.Time) error {
	names := make([]string, 0, len(nodes))
	for name := range nodes {
		names = append(names, name)
	}
	sort.Strings(names)
	return nodesReady("server", names, since)
}

// containerIDs lists the running containers of the given nodes' kubelets.
func containerIDs(t *testing.T, names ...string) []string {
	t.Helper()
	var ids []string
	for _, n := range names {
		var stdout, stderr strings.Builder
		cmd := exec.Command("docker", "exec", container(n), "kubling", "crictl", "ps", "-q")
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("crictl ps on %s: %v: %s", n, err, stderr.String())
		}
		ids = append(ids, strings.Fields(stdout.String())...)
	}
	sort.Strings(ids)
	return ids
}

// refused checks that the server answers a join request made with
// bootstrapToken with 401.
func refused(serverURL, bootstrapToken string) error {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	req, err := http.NewRequest(http.MethodPost, serverURL+"/v1-kubling/join", strings.NewReader("{}"))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+bootstrapToken)
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

func httpGet(url string) (string, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return strings.TrimSpace(string(b)), err
}

func waitFor(t *testing.T, what string, d time.Duration, check func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	var err error
	for time.Now().Before(deadline) {
		if err = check(); err == nil {
			return
		}
		time.Sleep(time.Second)
	}
	t.Fatalf("waiting for %s: %v", what, err)
}

// teardown removes the test's containers (with their volumes) and network,
// and the cgroups their kubelets made in the host's tree.
func teardown(t *testing.T) {
	out, _ := docker("ps", "-aq", "--filter", "label="+label)
	if ids := strings.Fields(out); len(ids) > 0 {
		if _, err := docker(append([]string{"rm", "-fv"}, ids...)...); err != nil {
			t.Log(err)
		}
	}
	out, _ = docker("network", "ls", "-q", "--filter", "label="+label)
	for _, id := range strings.Fields(out) {
		if _, err := docker("network", "rm", id); err != nil {
			t.Log(err)
		}
	}
	names := []string{"server", "agent1", "agent2", "agent3", "iserver", "iagent", "ha-bad"}
	for name := range haNodes {
		names = append(names, name)
	}
	for _, name := range names {
		roots, _ := filepath.Glob("/sys/fs/cgroup/*/kubling-" + name)
		for _, root := range roots {
			removeCgroupTree(t, root)
		}
	}
}

// removeCgroupTree removes a cgroup and its children, deepest first,
// waiting a little for exiting processes.
func removeCgroupTree(t *testing.T, root string) {
	var dirs []string
	_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		var err error
		for try := 0; try < 20; try++ {
			if err = os.Remove(dirs[i]); err == nil || os.IsNotExist(err) {
				break
			}
			time.Sleep(250 * time.Millisecond)
		}
		if err != nil && !os.IsNotExist(err) {
			t.Logf("cgroup %s: %v", dirs[i], err)
		}
	}
}

// crossNodePolicy: NetworkPolicy is enforced on every node, for pods on
// other nodes too. With a policy letting only the client labelled
// role=allowed (the one on agent1) reach the web pods, it reaches those on
// the other nodes and the other clients reach none; deleted, all reach.
func crossNodePolicy(t *testing.T, web, clients []pod) {
	t.Helper()
	var allowed string
	for _, c := range clients {
		if c.node == "agent1" {
			allowed = c.name
		}
	}
	if _, err := kubectl("label", "pod", "-n", "mn", allowed, "role=allowed"); err != nil {
		t.Fatal(err)
	}
	apply(t, `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-from-allowed, namespace: mn}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from: [{podSelector: {matchLabels: {role: allowed}}}]
`)
	check := func(what string, reach func(client pod) bool) {
		t.Helper()
		begin := time.Now()
		waitFor(t, what, time.Minute, func() error {
			var wrong []string
			for _, c := range clients {
				for _, w := range web {
					if w.node == c.node {
						continue
					}
					got, err := execIn(c.name, "timeout", "2", "wget", "-qO-", "http://"+w.ip+":8080/")
					if ok := err == nil && strings.TrimSpace(got) == w.name; ok != reach(c) {
						wrong = append(wrong, fmt.Sprintf("%s → %s on %s reaches=%v", c.node, w.name, w.node, ok))
					}
				}
			}
			if len(wrong) > 0 {
				return fmt.Errorf("%s", strings.Join(wrong, "; "))
			}
			return nil
		})
		// A round of checks takes seconds itself (a blocked wget waits 2 s).
		t.Logf("%s: seen after %s", what, time.Since(begin).Round(100*time.Millisecond))
	}
	check("only agent1's client reaches web pods on other nodes", func(c pod) bool { return c.name == allowed })
	if _, err := kubectl("delete", "networkpolicy", "-n", "mn", "web-from-allowed"); err != nil {
		t.Fatal(err)
	}
	check("policy deleted: every client reaches web pods on other nodes", func(pod) bool { return true })
}

// loadBalancer: a LoadBalancer Service with externalTrafficPolicy Local
// gets every node's address (each runs web pods) and answers on each from
// the host, from that node's own pods, with the host's address kept;
// labelling one node svccontroller.kubling.io/enablelb=true narrows it to
// that node.
func loadBalancer(t *testing.T, web []pod) {
	t.Helper()
	apply(t, `apiVersion: v1
kind: Service
metadata: {name: web-lb, namespace: mn}
spec:
  type: LoadBalancer
  externalTrafficPolicy: Local
  selector: {app: web}
  ports: [{port: 8088, targetPort: 8080}]
`)
	ingress := func() string {
		out, _ := kubectl("get", "svc", "-n", "mn", "web-lb", "-o", "jsonpath={.status.loadBalancer.ingress[*].ip}")
		return strings.TrimSpace(out)
	}
	all := []string{nodes["server"], nodes["agent1"], nodes["agent2"]}
	slices.Sort(all)
	waitFor(t, "web-lb to list every node", 30*time.Second, func() error {
		if got := ingress(); got != strings.Join(all, " ") {
			return fmt.Errorf("ingress %q", got)
		}
		return nil
	})
	onNode := map[string]string{}
	for _, p := range web {
		onNode[p.name] = p.node
	}
	const hostAddress = "172.30.99.1" // the host on the test network
	for name, ip := range nodes {
		waitFor(t, "web-lb on "+name, 30*time.Second, func() error {
			got, err := httpGet("http://" + ip + ":8088/")
			if err != nil || onNode[got] != name {
				return fmt.Errorf("answered by %q (on %q), want a pod on %s: %v", got, onNode[got], name, err)
			}
			addr, err := httpGet("http://" + ip + ":8088/cgi-bin/ip")
			if addr = strings.TrimSuffix(strings.TrimPrefix(addr, "[::ffff:"), "]"); err != nil || addr != hostAddress {
				return fmt.Errorf("the pod saw the client at %q (%v), want %s", addr, err, hostAddress)
			}
			return nil
		})
	}
	if _, err := kubectl("label", "node", "agent1", "svccontroller.kubling.io/enablelb=true"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "web-lb on agent1 alone once it is labelled", 30*time.Second, func() error {
		if got := ingress(); got != nodes["agent1"] {
			return fmt.Errorf("ingress %q", got)
		}
		return nil
	})
	if _, err := kubectl("label", "node", "agent1", "svccontroller.kubling.io/enablelb-"); err != nil {
		t.Fatal(err)
	}
	if _, err := kubectl("delete", "svc", "-n", "mn", "web-lb"); err != nil {
		t.Fatal(err)
	}
}

// behindNAT: with every new connection from the server to agent2 dropped
// (as a NAT in front of agent2 would), `kubectl logs`, `exec` and
// `port-forward` of a pod on agent2 still work: the apiserver reaches agent2's kubelet through the
// tunnel agent2 opened to the server.
func behindNAT(t *testing.T, web []pod) {
	t.Helper()
	waitFor(t, "agent2's tunnel to the server", time.Minute, func() error {
		logs, _ := docker("logs", container("server"))
		for _, line := range strings.Split(logs, "\n") {
			if strings.Contains(line, `"Node tunnel connected"`) && strings.Contains(line, `node="agent2"`) {
				return nil
			}
		}
		return fmt.Errorf("not in the server's log")
	})
	var onAgent2 string
	for _, p := range web {
		if p.node == "agent2" {
			onAgent2 = p.name
		}
	}
	iptables := "/var/lib/kubling/agent/bin/iptables" // the server's image has none of its own
	rule := []string{"OUTPUT", "-d", nodes["agent2"], "-p", "tcp", "-m", "conntrack", "--ctstate", "NEW", "-j", "DROP"}
	mustDocker(t, append([]string{"exec", container("server"), iptables, "-I"}, rule...)...)
	defer mustDocker(t, append([]string{"exec", container("server"), iptables, "-D"}, rule...)...)
	// The drop works: the server cannot dial agent2's kubelet itself.
	if out, err := docker("exec", container("server"), "timeout", "3", "bash", "-c", "exec 3<>/dev/tcp/"+nodes["agent2"]+"/10250"); err == nil {
		t.Fatalf("the server still dials agent2's kubelet: %s", out)
	}
	if out, err := kubectl("logs", "-n", "mn", onAgent2); err != nil {
		t.Errorf("kubectl logs of %s on agent2, unreachable from the server: %v: %s", onAgent2, err, out)
	}
	if out, err := execIn(onAgent2, "hostname"); err != nil || strings.TrimSpace(out) != onAgent2 {
		t.Errorf("kubectl exec in %s on agent2, unreachable from the server: %q %v", onAgent2, out, err)
	}
	// kubectl port-forward (on the server's machine) to the pod's httpd,
	// which answers with the pod's name.
	script := `kubling kubectl port-forward -n mn pod/` + onAgent2 + ` 18080:8080 >/tmp/port-forward.log 2>&1 & pf=$!
for i in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/18080) 2>/dev/null && break; sleep 0.2; done
exec 3<>/dev/tcp/127.0.0.1/18080 && printf 'GET / HTTP/1.0\r\n\r\n' >&3 && timeout 10 cat <&3
kill $pf; cat /tmp/port-forward.log`
	if out, err := docker("exec", container("server"), "bash", "-c", script); err != nil || !strings.Contains(out, onAgent2) {
		t.Errorf("kubectl port-forward to %s on agent2, unreachable from the server: %v\n%s", onAgent2, err, out)
	}
}

// agentVolumeManifest is a claim with no class and a pod on agent2 that
// writes into it.
const agentVolumeManifest = `apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: vol, namespace: mn}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 16Mi}}
---
apiVersion: v1
kind: Pod
metadata: {name: vol, namespace: mn}
spec:
  nodeSelector: {kubernetes.io/hostname: agent2}
  containers:
  - name: c
    image: kubling.test/busybox:1
    imagePullPolicy: Never
    command: ["sh", "-c", "echo on-agent2 > /data/file; exec sleep 100000"]
    volumeMounts: [{name: data, mountPath: /data}]
  volumes:
  - name: data
    persistentVolumeClaim: {claimName: vol}
`

// agentVolume checks local-path volumes on an agent: the server's
// provisioner binds the claim to a folder on agent2, where the pod's data
// lands; deleting the claim has agent2 remove the folder.
func agentVolume(t *testing.T) {
	t.Helper()
	apply(t, agentVolumeManifest)
	waitFor(t, "the volume's pod running on agent2", 2*time.Minute, func() error {
		out, err := kubectl("get", "-n", "mn", "pod/vol", "pvc/vol", "-o", "jsonpath={.items[*].status.phase}")
		if err != nil || out != "Running Bound" {
			return fmt.Errorf("pod, claim: %q %v", out, err)
		}
		return nil
	})
	pv, err := kubectl("get", "-n", "mn", "pvc", "vol", "-o", "jsonpath={.spec.volumeName}")
	if err != nil {
		t.Fatal(err)
	}
	folder := "/var/lib/kubling/storage/" + pv
	waitFor(t, "the pod's file in agent2's folder", time.Minute, func() error {
		out, err := docker("exec", container("agent2"), "cat", folder+"/file")
		if err != nil || strings.TrimSpace(out) != "on-agent2" {
			return fmt.Errorf("%s/file: %q %v", folder, out, err)
		}
		return nil
	})
	if _, err := docker("exec", container("server"), "test", "-e", folder); err == nil {
		t.Errorf("agent2's volume folder %s exists on the server too", folder)
	}
	if _, err := kubectl("delete", "-n", "mn", "pod/vol", "pvc/vol", "--wait"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "agent2's volume folder removed", time.Minute, func() error {
		if _, err := docker("exec", container("agent2"), "test", "-e", folder); err == nil {
			return fmt.Errorf("%s still there", folder)
		}
		return nil
	})
}
