//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// echoApp answers /cgi-bin/ip with the address the pod sees the client at,
// behind two LoadBalancer Services: externalTrafficPolicy Cluster (8081)
// and Local (8082).
const echoApp = `apiVersion: apps/v1
kind: Deployment
metadata: {name: echo, namespace: e2e}
spec:
  replicas: 1
  selector: {matchLabels: {app: echo}}
  template:
    metadata: {labels: {app: echo}}
    spec:
      containers:
      - name: echo
        image: kubling.test/busybox:1
        imagePullPolicy: Never
        command: ["sh", "-c", "mkdir -p /www/cgi-bin && printf '#!/bin/sh\\necho Content-Type: text/plain\\necho\\necho $REMOTE_ADDR\\n' > /www/cgi-bin/ip && chmod +x /www/cgi-bin/ip && exec httpd -f -p 8080 -h /www"]
        ports: [{containerPort: 8080}]
        readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: echo-cluster, namespace: e2e}
spec:
  type: LoadBalancer
  selector: {app: echo}
  ports: [{port: 8081, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: echo-local, namespace: e2e}
spec:
  type: LoadBalancer
  externalTrafficPolicy: Local
  selector: {app: echo}
  ports: [{port: 8082, targetPort: 8080}]
`

// lbService is a LoadBalancer Service for the echo pod on port.
func lbService(name string, port int) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Service
metadata: {name: %s, namespace: e2e}
spec:
  type: LoadBalancer
  selector: {app: echo}
  ports: [{port: %d, targetPort: 8080}]
`, name, port)
}

// TestServiceLB is issue 25's ServiceLB and --node-external-ip check on
// one node: the Node gets the external address (and no taint stays);
// LoadBalancer Services get it within seconds and answer there from
// outside the pod network (a network namespace beside the host), with the
// client's address kept for externalTrafficPolicy Local; a second Service
// on a held port, and one on the apiserver's port, get an Event and no
// address; freeing the port hands it on; `--disable servicelb` assigns
// nothing.
func TestServiceLB(t *testing.T) {
	s := newNodeServer(t)
	// A documentation address no interface has: kube-proxy answers a
	// Service's ingress addresses before routing, wherever they lead.
	const externalIP = "203.0.113.7"
	s.start("--node-external-ip", externalIP)
	client := newNetnsClient(t, "kl-lbclient", "192.168.254")
	node := s.kubectl("get", "nodes", "-o", "jsonpath={.items[0].metadata.name}")
	hostIP := s.kubectl("get", "node", node, "-o", `jsonpath={.status.addresses[?(@.type=="InternalIP")].address}`)
	eventually(t, 30*time.Second, "the Node's ExternalIP, no uninitialized taint, flannel's public address", func() string {
		got := s.kubectl("get", "node", node, "-o", `jsonpath={.status.addresses[?(@.type=="ExternalIP")].address} {.spec.taints[*].key} {.metadata.annotations.flannel\.alpha\.coreos\.com/public-ip}`)
		if want := externalIP + "  " + externalIP; got != want {
			return fmt.Sprintf("got %q, want %q", got, want)
		}
		return ""
	})
	if hostIP == "" || hostIP == externalIP {
		t.Fatalf("InternalIP %q", hostIP)
	}
	s.kubectl("create", "namespace", "e2e")
	created := time.Now()
	apply(t, s, echoApp)
	// ServiceLB lists a node's ExternalIP where it has one.
	nodeIP := externalIP
	for _, svc := range []string{"echo-cluster", "echo-local"} {
		eventually(t, 30*time.Second, svc+" gets the node's address", func() string {
			if got := ingress(s, svc); got != nodeIP {
				return fmt.Sprintf("ingress %q, want %s", got, nodeIP)
			}
			return ""
		})
	}
	t.Logf("both Services had the node's address %s after %s", nodeIP, time.Since(created).Round(100*time.Millisecond))

	eventually(t, 2*time.Minute, "Local keeps the client's address", func() string {
		got, err := client.get("http://" + nodeIP + ":8082/cgi-bin/ip")
		if err != nil || got != client.ip {
			return fmt.Sprintf("got %q (%v), want %s", got, err, client.ip)
		}
		return ""
	})
	eventually(t, 30*time.Second, "Cluster answers (the client's address masqueraded)", func() string {
		got, err := client.get("http://" + nodeIP + ":8081/cgi-bin/ip")
		if err != nil || got == "" || got == client.ip {
			return fmt.Sprintf("got %q (%v), want an address other than %s", got, err, client.ip)
		}
		return ""
	})
	if got, err := httpGet("http://" + nodeIP + ":8081/cgi-bin/ip"); err != nil || got == "" {
		t.Errorf("from the host: %q %v", got, err)
	}

	// A younger Service on 8081, and one on the apiserver's port: an Event
	// each, no address.
	apply(t, s, lbService("echo-dup", 8081)+"---\n"+lbService("echo-api", 6443))
	eventually(t, 30*time.Second, "an Event naming both Services on 8081", func() string {
		ev := events(s, "echo-dup")
		if !strings.Contains(ev, "PortInUse") || !strings.Contains(ev, "e2e/echo-cluster") || !strings.Contains(ev, "e2e/echo-dup") {
			return ev
		}
		return ""
	})
	eventually(t, 30*time.Second, "an Event on the apiserver's port", func() string {
		if ev := events(s, "echo-api"); !strings.Contains(ev, "PortReserved") || !strings.Contains(ev, "apiserver") {
			return ev
		}
		return ""
	})
	for _, svc := range []string{"echo-dup", "echo-api"} {
		if got := ingress(s, svc); got != "" {
			t.Errorf("%s got %q, want no address", svc, got)
		}
	}
	// Plain HTTP to 6443 reaches the apiserver, not the echo pod.
	if got, err := client.get("http://" + hostIP + ":6443/cgi-bin/ip"); err != nil || !strings.Contains(got, "HTTPS server") {
		t.Errorf("port 6443 from outside: %q %v, want the apiserver's answer", got, err)
	}
	if _, err := s.tryKubectl("get", "--raw", "/readyz"); err != nil {
		t.Errorf("the apiserver stopped answering: %v", err)
	}
	// Deleting the holder hands the port on.
	s.kubectl("delete", "service", "-n", "e2e", "echo-cluster")
	eventually(t, 30*time.Second, "echo-dup gets the freed port", func() string {
		if got := ingress(s, "echo-dup"); got != nodeIP {
			return fmt.Sprintf("ingress %q", got)
		}
		return ""
	})
	eventually(t, 30*time.Second, "echo-dup answers", func() string {
		if got, err := client.get("http://" + nodeIP + ":8081/cgi-bin/ip"); err != nil || got == "" {
			return fmt.Sprintf("%q %v", got, err)
		}
		return ""
	})

	// --disable servicelb (and no --node-external-ip): a new Service gets
	// nothing; the node is back to its InternalIP.
	s.stop()
	s.start("--disable", "servicelb")
	eventually(t, time.Minute, "the ExternalIP gone, flannel's public address the host's", func() string {
		got := s.kubectl("get", "node", node, "-o", `jsonpath={.status.addresses[?(@.type=="ExternalIP")].address}/{.metadata.annotations.flannel\.alpha\.coreos\.com/public-ip}`)
		if want := "/" + hostIP; got != want {
			return fmt.Sprintf("got %q, want %q", got, want)
		}
		return ""
	})
	apply(t, s, lbService("echo-off", 8090))
	time.Sleep(10 * time.Second)
	if got := ingress(s, "echo-off"); got != "" {
		t.Errorf("with --disable servicelb, echo-off got %q", got)
	}
	if ev := events(s, "echo-off"); strings.Contains(ev, "ServiceLB") {
		t.Errorf("with --disable servicelb, Events: %s", ev)
	}
}

func ingress(s *server, svc string) string {
	got, _ := s.tryKubectl("get", "service", "-n", "e2e", svc, "-o", "jsonpath={.status.loadBalancer.ingress[*].ip}")
	return got
}

func events(s *server, name string) string {
	got, _ := s.tryKubectl("get", "events", "-n", "e2e", "--field-selector", "involvedObject.name="+name, "-o", `jsonpath={range .items[*]}{.reason}: {.message}{"\n"}{end}`)
	return got
}

// netnsClient is a network namespace joined to the host by a veth pair:
// a client outside the pod network whose address is not the host's.
type netnsClient struct {
	t      *testing.T
	ns, ip string
}

// newNetnsClient makes the namespace with prefix.2/30 inside and
// prefix.1/30 on the host; cleanup removes both.
func newNetnsClient(t *testing.T, ns, prefix string) *netnsClient {
	t.Helper()
	host, peer := ns[:min(len(ns), 11)]+"-h", ns[:min(len(ns), 11)]+"-c"
	exec.Command("ip", "netns", "del", ns).Run()
	exec.Command("ip", "link", "del", host).Run()
	t.Cleanup(func() {
		exec.Command("ip", "netns", "del", ns).Run()
		exec.Command("ip", "link", "del", host).Run()
	})
	for _, args := range [][]string{
		{"netns", "add", ns},
		{"link", "add", host, "type", "veth", "peer", "name", peer},
		{"link", "set", peer, "netns", ns},
		{"addr", "add", prefix + ".1/30", "dev", host},
		{"link", "set", host, "up"},
		{"-n", ns, "addr", "add", prefix + ".2/30", "dev", peer},
		{"-n", ns, "link", "set", peer, "up"},
		{"-n", ns, "link", "set", "lo", "up"},
		{"-n", ns, "route", "add", "default", "via", prefix + ".1"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	return &netnsClient{t: t, ns: ns, ip: prefix + ".2"}
}

// get fetches url from inside the namespace (this test binary as the
// client: TestMain, httpGetEnv; 3 s).
func (c *netnsClient) get(url string) (string, error) {
	cmd := exec.Command("ip", "netns", "exec", c.ns, os.Args[0])
	cmd.Env = append(os.Environ(), httpGetEnv+"="+url)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%v: %s", err, out)
	}
	// busybox httpd tells IPv4 clients as [::ffff:a.b.c.d].
	addr := strings.TrimSpace(string(out))
	return strings.TrimSuffix(strings.TrimPrefix(addr, "[::ffff:"), "]"), nil
}
