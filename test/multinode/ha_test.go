//go:build e2e

package multinode

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kubling/kubling/test/dbserver"
)

// HA nodes: three servers on embedded etcd (a fourth replaces one) and an
// agent, on the same test network as TestMultiNode's (which runs first and
// tears down after itself).
var haNodes = map[string]string{
	"ha-server1": "172.30.99.21", "ha-server2": "172.30.99.22", "ha-server3": "172.30.99.23",
	"ha-server4": "172.30.99.24", "ha-agent": "172.30.99.25",
}

// haWorkload is a web Deployment spread over the nodes, one pod each.
var haWorkload = webWorkload("ha", 4)

// TestHAServers: three servers on embedded etcd and an agent, the last
// three started at the same moment. rotate-keys on one server rotates all
// three, and so does token rotate. One server
// killed, the API answers through the other two, the agent's pods keep
// serving and writes go on; the killed server comes back with them. A
// server removed (its Node deleted removes its etcd member) and a new one
// added: the cluster then survives losing another. After quorum loss the
// survivor's --cluster-reset serves every write.
func TestHAServers(t *testing.T) {
	image := setUp(t, "ha-server1", "ha-server2", "ha-server3", "ha-server4", "ha-agent", "ha-reset")
	mustDocker(t, "network", "create", "--subnet", subnet, "--label", label, network)
	url := func(server string) string { return "https://" + haNodes[server] + ":6443" }

	// The first server starts the cluster. As soon as its token exists
	// (seconds, long before it serves), the second and third server and
	// the agent start at the same moment, as a site's machines boot after
	// a power cut or an Ansible run starts them (issue 24): the servers
	// join through the first one, one at a time ("another server is
	// joining"), and the agent waits for it; none gives up.
	const agentSecret = "hagent.0123456789abcdef"
	runNode(t, image, "ha-server1", nil, "server", "--cluster-init", "--agent-token", agentSecret)
	var tok string
	waitFor(t, "ha-server1's token file", time.Minute, func() error {
		out, err := docker("exec", container("ha-server1"), "cat", "/var/lib/kubling/server/token")
		tok = strings.TrimSpace(out)
		return err
	})
	agentTok := strings.SplitN(tok, "::", 2)[0] + "::" + agentSecret
	runNode(t, image, "ha-server2", nil, "server", "--server", url("ha-server1"), "--token", tok)
	runNode(t, image, "ha-server3", nil, "server", "--server", url("ha-server1"), "--token", tok)
	runNode(t, image, "ha-agent", nil, "agent", "--server", url("ha-server1"), "--token", agentTok)
	for _, s := range []string{"ha-server1", "ha-server2", "ha-server3"} {
		waitServing(t, s, 4*time.Minute)
	}
	// Every server holds the cluster's one agent token.
	for _, s := range []string{"ha-server1", "ha-server2", "ha-server3"} {
		waitFor(t, s+" holding the agent token", time.Minute, func() error {
			if got, _ := docker("exec", container(s), "cat", "/var/lib/kubling/server/agent-token"); strings.TrimSpace(got) != agentTok {
				return fmt.Errorf("it holds %d other bytes", len(got))
			}
			return nil
		})
	}
	all := []string{"ha-server1", "ha-server2", "ha-server3", "ha-agent"}
	waitFor(t, "four Ready nodes", 4*time.Minute, func() error { return nodesReady("ha-server1", all, nil) })
	for _, s := range []string{"ha-server2", "ha-server3"} {
		if logs, _ := docker("logs", container(s)); !strings.Contains(logs, "Joined the etcd cluster as a voting member") {
			t.Errorf("%s does not say its etcd member was promoted", s)
		}
	}
	// kubling etcd member ls: three voting members; remove refuses a name
	// it does not know, in one line.
	members := mustDocker(t, "exec", container("ha-server1"), "kubling", "etcd", "member", "ls")
	for _, s := range []string{"ha-server1", "ha-server2", "ha-server3"} {
		if !regexp.MustCompile(`(?m)^[0-9a-f]+\s+` + s + `\s+voting\s+https://`).MatchString(members) {
			t.Errorf("etcd member ls lacks %s as a voting member:\n%s", s, members)
		}
	}
	if out, err := docker("exec", container("ha-server1"), "kubling", "etcd", "member", "remove", "no-such-server"); err == nil || !strings.Contains(out, `no etcd member named "no-such-server"`) {
		t.Errorf("etcd member remove of an unknown name: %v\n%s", err, out)
	}
	// Refused joins, one line each: a token pinning another CA, and an
	// agent's token.
	secret := strings.SplitN(tok, "::", 2)[1]
	if out, err := runOnce(image, "ha-bad", "server", "--server", url("ha-server1"), "--token", "KL1"+strings.Repeat("0", 64)+"::"+secret); err == nil || !strings.Contains(out, "another cluster CA than the token pins") {
		t.Errorf("a server join with another cluster's token: %v\n%s", err, out)
	}
	if out, err := runOnce(image, "ha-bad", "server", "--server", url("ha-server1"), "--token", agentTok); err == nil || !strings.Contains(out, "this token joins agents only") {
		t.Errorf("a server join with an agent token: %v\n%s", err, out)
	}
	rotateKeysOnEveryServer(t, []string{"ha-server1", "ha-server2", "ha-server3"})
	tok = rotateServerTokenOnEveryServer(t, tok, []string{"ha-server1", "ha-server2", "ha-server3"}, url)

	// One leader runs the scheduler, the controller-manager and kubling's
	// controllers.
	leader := leaseHolder(t, "ha-server1")
	if _, ok := haNodes[leader]; !ok || leader == "ha-agent" {
		t.Fatalf("control-plane lease held by %q, want one of the servers", leader)
	}
	if logs, _ := docker("logs", container(leader)); !strings.Contains(logs, "Leading the control plane") {
		t.Errorf("the leader %s does not say it leads", leader)
	}

	// A Deployment spread over the four nodes.
	applyOn(t, "ha-server1", haWorkload)
	waitFor(t, "a web pod Ready on every node", 4*time.Minute, func() error {
		return webPerNode("ha-server1", all)
	})

	// Kill the first server: each other server answers within 10 s; writes
	// made meanwhile are kept; the agent's pods keep serving and its node
	// stays Ready (its load balancer moves to the servers left).
	killed := time.Now()
	mustDocker(t, "kill", container("ha-server1"))
	for _, s := range []string{"ha-server2", "ha-server3"} {
		waitFor(t, s+" answering after ha-server1 was killed", 10*time.Second-time.Since(killed), func() error {
			_, err := kubectlOn(s, "get", "--request-timeout=2s", "configmap", "-n", "ha", "-o", "name")
			return err
		})
	}
	t.Logf("the API answered through both remaining servers %s after the kill", time.Since(killed).Round(100*time.Millisecond))
	for i := range 20 {
		via := []string{"ha-server2", "ha-server3"}[i%2]
		if out, err := kubectlOn(via, "create", "configmap", "-n", "ha", fmt.Sprintf("outage-%d", i), "--from-literal=i="+fmt.Sprint(i)); err != nil {
			t.Fatalf("write during the outage through %s: %v %s", via, err, out)
		}
	}
	agentPod := podOn(t, "ha-server2", "ha-agent")
	if got, err := kubectlOn("ha-server2", "exec", "-n", "ha", agentPod, "--", "wget", "-qO-", "http://127.0.0.1:8080/"); err != nil || strings.TrimSpace(got) != agentPod {
		t.Errorf("the agent's web pod during the outage: %q %v", got, err)
	}
	waitFor(t, "the agent's node Ready through the remaining servers", 2*time.Minute, func() error {
		return nodesReady("ha-server2", []string{"ha-agent", "ha-server2", "ha-server3"}, &killed)
	})
	if leader == "ha-server1" {
		waitFor(t, "another server to take the control-plane lease", time.Minute, func() error {
			if h := leaseHolder(t, "ha-server2"); h == "ha-server1" {
				return fmt.Errorf("still held by %s", h)
			}
			return nil
		})
	}
	// The new leader's controllers and scheduler work: a new Deployment,
	// pinned to a live node, gets its pod.
	applyOn(t, "ha-server2", pinnedDeployment("after-kill", "ha-server3"))
	waitFor(t, "the pinned pod Ready after the kill", 3*time.Minute, func() error { return pinnedReady("ha-server2", "after-kill") })

	// The killed server returns, with every write made while it was away.
	mustDocker(t, "start", container("ha-server1"))
	waitServing(t, "ha-server1", 3*time.Minute)
	waitFor(t, "the outage's writes on ha-server1", time.Minute, func() error {
		out, err := kubectlOn("ha-server1", "get", "configmap", "-n", "ha", "-o", "name")
		if n := strings.Count(out, "configmap/outage-"); err != nil || n != 20 {
			return fmt.Errorf("%d of 20 configmaps: %v", n, err)
		}
		return nil
	})

	// Remove the third server: its machine goes, its Node is deleted, and
	// with it its etcd member. A fourth server joins in its place.
	mustDocker(t, "rm", "-fv", container("ha-server3"))
	if out, err := kubectlOn("ha-server1", "delete", "node", "ha-server3", "--wait=false"); err != nil {
		t.Fatalf("delete node: %v %s", err, out)
	}
	// The Node waits for it (a finalizer), whichever server leads.
	waitFor(t, "a server to remove ha-server3's etcd member", 2*time.Minute, func() error {
		for _, s := range []string{"ha-server1", "ha-server2"} {
			if logs, _ := docker("logs", container(s)); strings.Contains(logs, "removed its etcd member") && strings.Contains(logs, `node="ha-server3"`) {
				return nil
			}
		}
		return fmt.Errorf("no server says so")
	})
	waitFor(t, "ha-server3's Node to be gone", time.Minute, func() error {
		out, err := kubectlOn("ha-server1", "get", "node", "ha-server3", "--ignore-not-found", "-o", "name")
		if err == nil && strings.TrimSpace(out) != "" {
			err = fmt.Errorf("still there")
		}
		return err
	})
	runNode(t, image, "ha-server4", nil, "server", "--server", url("ha-server1"), "--token", tok)
	waitServing(t, "ha-server4", 3*time.Minute)
	now := []string{"ha-server1", "ha-server2", "ha-server4", "ha-agent"}
	waitFor(t, "four Ready nodes with ha-server4", 3*time.Minute, func() error { return nodesReady("ha-server1", now, nil) })

	// Three members again (ha-server1, 2 and 4): losing one more keeps a
	// quorum, which it would not had ha-server3's member stayed.
	killed = time.Now()
	mustDocker(t, "kill", container("ha-server2"))
	waitFor(t, "writes through ha-server4 with ha-server2 killed", 30*time.Second, func() error {
		_, err := kubectlOn("ha-server4", "create", "configmap", "-n", "ha", "after-replace", "--request-timeout=3s")
		if err != nil && strings.Contains(err.Error(), "AlreadyExists") {
			return nil
		}
		return err
	})
	if out, err := kubectlOn("ha-server1", "get", "configmap", "-n", "ha", "after-replace"); err != nil {
		t.Errorf("ha-server1 does not see the write made through ha-server4: %v %s", err, out)
	}

	// Quorum lost (ha-server4 killed too: one of three members left): the
	// lone survivor, started again with --cluster-reset on its data, serves
	// as a one-member cluster with every write.
	mustDocker(t, "kill", container("ha-server4"))
	mustDocker(t, "stop", "-t", "30", container("ha-server1"))
	flags := nodeFlags("ha-server1")
	flags[1] = container("ha-reset") // same host name, address and data, another container
	mustDocker(t, append(append(append([]string{"run", "-d"}, flags...), "--volumes-from", container("ha-server1"), image), "server", "--cluster-reset")...)
	waitServing(t, "ha-reset", 3*time.Minute)
	out, err := kubectlOn("ha-reset", "get", "configmap", "-n", "ha", "-o", "name")
	if n := strings.Count(out, "configmap/outage-"); err != nil || n != 20 || !strings.Contains(out, "configmap/after-replace") {
		t.Errorf("after --cluster-reset: %d of 20 outage writes, after-replace %v: %v", n, strings.Contains(out, "after-replace"), err)
	}
	if out, err := kubectlOn("ha-reset", "create", "configmap", "-n", "ha", "after-reset"); err != nil {
		t.Errorf("a write after --cluster-reset: %v %s", err, out)
	}
}

// rotateKeysOnEveryServer runs rotate-keys on the second server while all
// serve (issue 24): a Secret reads through every server during and after,
// and every server ends with the same configuration, its old key gone.
func rotateKeysOnEveryServer(t *testing.T, servers []string) {
	t.Helper()
	const value = "ha-rotate-5b2f"
	if out, err := kubectlOn(servers[0], "create", "secret", "generic", "-n", "default", "ha-hush", "--from-literal=k="+value); err != nil {
		t.Fatalf("create secret: %v %s", err, out)
	}
	read := func(s string) error {
		out, err := kubectlOn(s, "get", "secret", "-n", "default", "ha-hush", "-o", "jsonpath={.data.k}")
		if err != nil {
			return err
		}
		if got, _ := base64.StdEncoding.DecodeString(strings.TrimSpace(out)); string(got) != value {
			return fmt.Errorf("the Secret reads %q through %s", out, s)
		}
		return nil
	}
	before := strings.TrimSpace(mustDocker(t, "exec", container(servers[0]), "cat", "/var/lib/kubling/server/tls/encryption-config.yaml"))
	done := make(chan error, 1)
	var out strings.Builder
	go func() {
		cmd := exec.Command("docker", "exec", container(servers[1]), "kubling", "secrets-encrypt", "rotate-keys")
		cmd.Stdout, cmd.Stderr = &out, &out
		done <- cmd.Run()
	}()
	start := time.Now()
	reads := 0
	for running := true; running; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("rotate-keys on %s: %v\n%s", servers[1], err, out.String())
			}
			running = false
		case <-time.After(time.Second):
		}
		for _, s := range servers {
			if err := read(s); err != nil {
				t.Errorf("during the rotation: %v", err)
			}
			reads++
		}
	}
	t.Logf("rotate-keys on %s took %s (%d reads through the servers meanwhile):\n%s", servers[1], time.Since(start).Round(time.Second), reads, out.String())
	if !strings.Contains(out.String(), "keys rotated") {
		t.Fatalf("rotate-keys did not finish:\n%s", out.String())
	}
	after := strings.TrimSpace(mustDocker(t, "exec", container(servers[1]), "cat", "/var/lib/kubling/server/tls/encryption-config.yaml"))
	if after == before {
		t.Fatal("the configuration did not change")
	}
	for _, s := range servers {
		if got := strings.TrimSpace(mustDocker(t, "exec", container(s), "cat", "/var/lib/kubling/server/tls/encryption-config.yaml")); got != after {
			t.Errorf("%s holds another encryption configuration than %s", s, servers[1])
		}
		if err := read(s); err != nil {
			t.Errorf("after the rotation: %v", err)
		}
	}
}

// rotateServerTokenOnEveryServer runs `kubling token rotate` on the first
// server while all serve (issue 24): the others take the new token within
// seconds; the old one is refused by every server, also after each has
// restarted (the second and third still have it as --token in their
// command: accepted, with a warning). It returns the new token.
func rotateServerTokenOnEveryServer(t *testing.T, old string, servers []string, url func(string) string) string {
	t.Helper()
	mustDocker(t, "exec", container(servers[0]), "kubling", "token", "rotate")
	rotated := strings.TrimSpace(mustDocker(t, "exec", container(servers[0]), "cat", "/var/lib/kubling/server/token"))
	if rotated == old || !strings.HasPrefix(rotated, strings.SplitN(old, "::", 2)[0]+"::") {
		t.Fatalf("rotated token %d bytes, the same CA hash: %v", len(rotated), rotated != old)
	}
	check := func(when string) {
		t.Helper()
		for _, s := range servers {
			waitFor(t, s+" holding the rotated token "+when, time.Minute, func() error {
				if got, _ := docker("exec", container(s), "cat", "/var/lib/kubling/server/token"); strings.TrimSpace(got) != rotated {
					return fmt.Errorf("it holds another")
				}
				return nil
			})
			waitFor(t, s+" refusing the old token "+when, time.Minute, func() error { return refused(url(s), bootstrapToken(t, old)) })
			if err := refused(url(s), bootstrapToken(t, rotated)); err == nil {
				t.Errorf("%s refuses the rotated token %s", s, when)
			}
		}
	}
	check("after the rotation")
	for _, s := range servers {
		mustDocker(t, "restart", "-t", "30", container(s))
		waitServing(t, s, 3*time.Minute)
	}
	check("after every server restarted")
	for _, s := range servers[1:] {
		if logs, _ := docker("logs", container(s)); !strings.Contains(logs, "The server token was rotated on another server") || !strings.Contains(logs, "--token names a server token since rotated") {
			t.Errorf("%s does not say it took the rotated token, or that its --token is the old one", s)
		}
	}
	return rotated
}

// setUp clears the harness and has the named nodes' last log lines shown
// should the test fail; it returns the node image.
func setUp(t *testing.T, names ...string) string {
	t.Helper()
	image := os.Getenv("KUBLING_NODE_IMAGE")
	if image == "" {
		t.Fatal("KUBLING_NODE_IMAGE is not set; run `make test-multinode`")
	}
	teardown(t)
	t.Cleanup(func() {
		if t.Failed() {
			for _, name := range names {
				out, _ := docker("logs", "--tail", "60", container(name))
				t.Logf("--- last log lines of %s:\n%s", name, out)
			}
		}
		teardown(t)
	})
	return image
}

// waitServing waits for a server's apiserver to be ready.
func waitServing(t *testing.T, server string, d time.Duration) {
	t.Helper()
	waitFor(t, server+" to be ready", d, func() error {
		_, err := kubectlOn(server, "get", "--raw", "/readyz")
		if running, _ := docker("inspect", "-f", "{{.State.Running}}", container(server)); err != nil && strings.TrimSpace(running) == "false" {
			t.Fatalf("%s exited", server)
		}
		return err
	})
}

// kubectlOn runs kubectl in a server's container, against its own
// apiserver.
func kubectlOn(server string, args ...string) (string, error) {
	var stdout, stderr strings.Builder
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", append([]string{"exec", container(server), "kubling", "kubectl"}, args...)...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("kubectl %s on %s: %w: %s", strings.Join(args, " "), server, err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

func applyOn(t *testing.T, server, manifest string) {
	t.Helper()
	cmd := exec.Command("docker", "exec", "-i", container(server), "kubling", "kubectl", "apply", "-f", "-")
	cmd.Stdin = strings.NewReader(manifest)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("apply: %v: %s", err, out)
	}
}

// nodesReady checks the named nodes are Ready, and with since, that each
// renewed its lease after that time.
func nodesReady(via string, names []string, since *time.Time) error {
	out, err := kubectlOn(via, "get", "nodes", "-o", "jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type==\"Ready\")].status}{\"\\n\"}{end}")
	if err != nil {
		return err
	}
	ready := map[string]bool{}
	for _, line := range strings.Fields(out) {
		name, status, _ := strings.Cut(line, "=")
		ready[name] = status == "True"
	}
	for _, name := range names {
		if !ready[name] {
			return fmt.Errorf("nodes: %s", strings.Join(strings.Fields(out), " "))
		}
		if since == nil {
			continue
		}
		renew, err := kubectlOn(via, "get", "lease", "-n", "kube-node-lease", name, "-o", "jsonpath={.spec.renewTime}")
		if err != nil {
			return err
		}
		if at, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(renew)); err != nil || !at.After(*since) {
			return fmt.Errorf("node %s last renewed its lease at %q", name, renew)
		}
	}
	return nil
}

// leaseHolder is the server holding kubling's control-plane lease.
func leaseHolder(t *testing.T, via string) string {
	t.Helper()
	var holder string
	waitFor(t, "a control-plane lease holder", time.Minute, func() error {
		out, err := kubectlOn(via, "get", "lease", "-n", "kube-system", "kubling-control-plane", "-o", "jsonpath={.spec.holderIdentity}")
		holder = strings.TrimSpace(out)
		if err == nil && holder == "" {
			err = fmt.Errorf("no holder")
		}
		return err
	})
	return holder
}

// webPerNode checks each named node runs a Ready web pod.
func webPerNode(via string, names []string) error {
	out, err := kubectlOn(via, "get", "pods", "-n", "ha", "-l", "app=web", "-o", "jsonpath={range .items[*]}{.spec.nodeName}={.status.conditions[?(@.type==\"Ready\")].status}{\"\\n\"}{end}")
	if err != nil {
		return err
	}
	for _, n := range names {
		if !strings.Contains(out, n+"=True") {
			return fmt.Errorf("web pods: %s", strings.Join(strings.Fields(out), " "))
		}
	}
	return nil
}

// podOn is the name of the web pod on node.
func podOn(t *testing.T, via, node string) string {
	t.Helper()
	out, err := kubectlOn(via, "get", "pods", "-n", "ha", "-l", "app=web", "--field-selector", "spec.nodeName="+node, "-o", "jsonpath={.items[0].metadata.name}")
	if err != nil || strings.TrimSpace(out) == "" {
		t.Fatalf("no web pod on %s: %v", node, err)
	}
	return strings.TrimSpace(out)
}

// TestHAExternalDatastore: two servers on one external PostgreSQL (Debian's,
// run by the test on the host, reached over the test network), started at
// the same moment, form one control plane: one takes the cluster's keys
// from the datastore with the token, both serve the same objects, and when the leader is
// killed the other takes over the scheduler and controllers. Then, both
// servers down, an agent started two minutes before one comes back joins.
func TestHAExternalDatastore(t *testing.T) {
	image := setUp(t, "ha-server1", "ha-server2", "ha-agent")
	mustDocker(t, "network", "create", "--subnet", subnet, "--label", label, network)
	port, err := dbserver.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	// The host's address on the test network.
	db, err := dbserver.PostgresOn(filepath.Join(t.TempDir(), "pg"), "172.30.99.1", port, subnet)
	if err != nil {
		t.Fatal(err)
	}
	pg, err := db.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pg.Stop)

	// Both servers start at the same moment on the empty database with one
	// chosen token (issue 24): one stores the cluster keys, the other takes
	// them, at start or, having lost the race to store its own, right then.
	const secret = "ha-external-shared-secret-0123"
	runNode(t, image, "ha-server1", nil, append([]string{"server", "--token", secret}, db.Flags...)...)
	runNode(t, image, "ha-server2", nil, append([]string{"server", "--token", secret}, db.Flags...)...)
	waitServing(t, "ha-server1", 3*time.Minute)
	waitServing(t, "ha-server2", 3*time.Minute)
	took := 0
	for _, s := range []string{"ha-server1", "ha-server2"} {
		logs, _ := docker("logs", container(s))
		if strings.Contains(logs, "Took the cluster keys from the datastore") {
			took++
		}
		if strings.Contains(logs, "taking them instead of this server's new ones") {
			t.Logf("%s lost the race to store the cluster keys and took the other's", s)
		}
	}
	if took != 1 {
		t.Errorf("%d servers say they took the cluster keys from the datastore, want 1", took)
	}
	both := []string{"ha-server1", "ha-server2"}
	waitFor(t, "two Ready nodes", 3*time.Minute, func() error { return nodesReady("ha-server2", both, nil) })
	ca1 := mustDocker(t, "exec", container("ha-server1"), "cat", "/var/lib/kubling/server/tls/server-ca.crt")
	if ca2 := mustDocker(t, "exec", container("ha-server2"), "cat", "/var/lib/kubling/server/tls/server-ca.crt"); ca1 != ca2 {
		t.Error("the two servers have different CAs")
	}
	if out, err := kubectlOn("ha-server1", "create", "configmap", "shared", "--from-literal=by=ha-server1"); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	if out, err := kubectlOn("ha-server2", "get", "configmap", "shared", "-o", "jsonpath={.data.by}"); err != nil || out != "ha-server1" {
		t.Fatalf("ha-server2 reads %q %v", out, err)
	}

	// Kill the leader: the other takes the lease and schedules.
	leader := leaseHolder(t, "ha-server1")
	other := map[string]string{"ha-server1": "ha-server2", "ha-server2": "ha-server1"}[leader]
	if other == "" {
		t.Fatalf("control-plane lease held by %q", leader)
	}
	mustDocker(t, "kill", container(leader))
	waitFor(t, other+" to take the control-plane lease", time.Minute, func() error {
		if h := leaseHolder(t, other); h != other {
			return fmt.Errorf("held by %s", h)
		}
		return nil
	})
	// (Pinned to the live node: the killed one still looks Ready for the
	// controller-manager's grace period.)
	applyOn(t, other, pinnedDeployment("after-kill", other))
	waitFor(t, "the pinned pod Ready, scheduled by "+other, 3*time.Minute, func() error { return pinnedReady(other, "after-kill") })

	// A site's power comes back and the devices boot in no order (issue
	// 24): with both servers down, an agent starts and waits two minutes
	// without giving up, then joins once a server is up.
	agentTok := strings.TrimSpace(mustDocker(t, "exec", container(other), "cat", "/var/lib/kubling/server/agent-token"))
	mustDocker(t, "stop", "-t", "30", container(other))
	runNode(t, image, "ha-agent", nil, "agent", "--server", "https://"+haNodes["ha-server1"]+":6443", "--token", agentTok)
	time.Sleep(2 * time.Minute)
	if running, _ := docker("inspect", "-f", "{{.State.Running}}", container("ha-agent")); strings.TrimSpace(running) != "true" {
		logs, _ := docker("logs", "--tail", "20", container("ha-agent"))
		t.Fatalf("the agent gave up while no server was up:\n%s", logs)
	}
	mustDocker(t, "start", container("ha-server1"))
	waitServing(t, "ha-server1", 3*time.Minute)
	waitFor(t, "the agent Ready once ha-server1 is up", 3*time.Minute, func() error {
		return nodesReady("ha-server1", []string{"ha-server1", "ha-agent"}, nil)
	})
}

// pinnedDeployment is a one-pod Deployment in namespace ha (made if
// missing) that only node may run.
func pinnedDeployment(name, node string) string {
	return `apiVersion: v1
kind: Namespace
metadata: {name: ha}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: ` + name + `, namespace: ha}
spec:
  replicas: 1
  selector: {matchLabels: {app: ` + name + `}}
  template:
    metadata: {labels: {app: ` + name + `}}
    spec:
      nodeSelector: {kubernetes.io/hostname: ` + node + `}
      containers:
      - name: web
        image: kubling.test/busybox:1
        imagePullPolicy: Never
        command: ["sleep", "100000"]
`
}

// pinnedReady checks the pinned Deployment's pod is Ready.
func pinnedReady(via, name string) error {
	out, err := kubectlOn(via, "get", "pods", "-n", "ha", "-l", "app="+name, "-o", "jsonpath={.items[*].status.conditions[?(@.type==\"Ready\")].status}")
	if err == nil && strings.TrimSpace(out) != "True" {
		err = fmt.Errorf("pod Ready: %q", out)
	}
	return err
}
