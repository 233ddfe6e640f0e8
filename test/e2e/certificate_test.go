//go:build e2e

package e2e

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	certutil "k8s.io/client-go/util/cert"

	"github.com/kubling/kubling/pkg/server/pki"
)

var serverLeaves = []string{pki.APIServerServing, pki.AdminClient, pki.ControllerClient, pki.SchedulerClient, pki.APIServerKubelet, pki.AuthProxyClient}
var serverCAs = []string{pki.ServerCA, pki.ClientCA, pki.RequestHeaderCA, pki.KubeletCA}

func readBytes(t *testing.T, path string) []byte { return []byte(readFile(t, path)) }

// servedCert is the leaf the apiserver presents now.
func servedCert(t *testing.T) []byte {
	t.Helper()
	conn, err := tls.Dial("tcp", "127.0.0.1:6443", &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].Raw
}

// fileCert is the leaf of a certificate file.
func fileCert(t *testing.T, path string) []byte {
	t.Helper()
	certs, err := certutil.ParseCertsPEM(readBytes(t, path))
	if err != nil {
		t.Fatal(err)
	}
	return certs[0].Raw
}

func TestCertificateCheckAndRotate(t *testing.T) {
	s := newServer(t)
	s.start()
	tlsDir := filepath.Join(s.dataDir, "server", "tls")
	p := pki.PKI{Dir: tlsDir}

	code, out := run(t, exec.Command(bin, "certificate", "check", "--data-dir", s.dataDir))
	if code != 0 {
		t.Fatalf("check: exit %d\n%s", code, out)
	}
	files, _ := filepath.Glob(filepath.Join(tlsDir, "*.crt"))
	if len(files) != len(serverLeaves)+len(serverCAs) {
		t.Fatalf("%d certificates in %s", len(files), tlsDir)
	}
	for _, f := range files {
		rel, _ := filepath.Rel(s.dataDir, f)
		if !strings.Contains(out, rel+" ") {
			t.Errorf("check does not list %s:\n%s", rel, out)
		}
	}
	if !strings.Contains(out, "system:admin") || !strings.Contains(out, "(CA)") {
		t.Errorf("check output:\n%s", out)
	}

	// While kubling runs, rotate refuses.
	if code, out := run(t, exec.Command(bin, "certificate", "rotate", "--data-dir", s.dataDir)); code == 0 || !strings.Contains(out, "stop kubling first") {
		t.Fatalf("rotate while running: exit %d\n%s", code, out)
	}
	s.stop()

	before := map[string][]byte{}
	for _, name := range append(append([]string{}, serverLeaves...), serverCAs...) {
		before[p.Cert(name)], before[p.Key(name)] = readBytes(t, p.Cert(name)), readBytes(t, p.Key(name))
	}
	if code, out := run(t, exec.Command(bin, "certificate", "rotate", "--data-dir", s.dataDir)); code != 0 {
		t.Fatalf("rotate: exit %d\n%s", code, out)
	}
	s.start()
	for _, name := range serverLeaves {
		if bytes.Equal(before[p.Cert(name)], readBytes(t, p.Cert(name))) || bytes.Equal(before[p.Key(name)], readBytes(t, p.Key(name))) {
			t.Errorf("%s: certificate or key not renewed", name)
		}
	}
	for _, name := range serverCAs {
		if !bytes.Equal(before[p.Cert(name)], readBytes(t, p.Cert(name))) || !bytes.Equal(before[p.Key(name)], readBytes(t, p.Key(name))) {
			t.Errorf("CA %s changed", name)
		}
	}
	if !bytes.Equal(servedCert(t), fileCert(t, p.Cert(pki.APIServerServing))) {
		t.Error("the apiserver does not serve the new certificate")
	}
	s.kubectl("create", "namespace", "rotated")
	eventually(t, time.Minute, "default service account in the new namespace (controller-manager)", func() string {
		if _, err := s.tryKubectl("-n", "rotated", "get", "serviceaccount", "default"); err != nil {
			return err.Error()
		}
		return ""
	})
}

// hostSANs names this host as apiserverSANs does, and more (extra names do
// not make the server renew).
func hostSANs(t *testing.T) pki.SANs {
	s := pki.SANs{
		DNSNames: []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
		IPs:      []net.IP{net.ParseIP("127.0.0.1"), net.IPv6loopback, net.ParseIP("10.43.0.1")},
	}
	if h, err := os.Hostname(); err == nil {
		s.DNSNames = append(s.DNSNames, strings.ToLower(h))
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.IsGlobalUnicast() {
			s.IPs = append(s.IPs, n.IP)
		}
	}
	return s
}

// TestCertificateRenewedWhileRunning: leaves with a few seconds more than
// 90 days left pass the start's check and are renewed by the running
// server a minute later; the apiserver serves the new certificate without a
// restart, the user's kubeconfig gets the new admin certificate, keys stay.
func TestCertificateRenewedWhileRunning(t *testing.T) {
	s := newServer(t)
	tlsDir := filepath.Join(s.dataDir, "server", "tls")
	issued := time.Now().Add(-(pki.LeafValidity - pki.RenewBefore - 45*time.Second))
	p, _, err := pki.Ensure(pki.Options{Dir: tlsDir, APIServerSAN: hostSANs(t), Now: func() time.Time { return issued }})
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string][]byte{}
	for _, name := range serverLeaves {
		keys[name] = readBytes(t, p.Key(name))
	}
	oldServing := fileCert(t, p.Cert(pki.APIServerServing))
	s.start()
	if !bytes.Equal(servedCert(t), oldServing) {
		t.Fatalf("the start renewed the serving certificate (wanted names missing?):\n%s", s.out)
	}
	eventually(t, 3*time.Minute, "certificates renewed while running", func() string {
		if !strings.Contains(s.out.String(), "Renewed certificates") {
			return "no renewal logged yet"
		}
		return ""
	})
	for _, name := range serverLeaves {
		if !bytes.Equal(keys[name], readBytes(t, p.Key(name))) {
			t.Errorf("%s: key replaced", name)
		}
	}
	newServing := fileCert(t, p.Cert(pki.APIServerServing))
	if bytes.Equal(newServing, oldServing) {
		t.Fatal("serving certificate file not renewed")
	}
	eventually(t, 2*time.Minute, "the apiserver serves the renewed certificate", func() string {
		if !bytes.Equal(servedCert(t), newServing) {
			return "still the old one"
		}
		return ""
	})
	cfg, err := clientcmd.LoadFromFile(s.kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(cfg.AuthInfos["default"].ClientCertificateData, readBytes(t, p.Cert(pki.AdminClient))) {
		t.Error("user kubeconfig still has the old admin certificate")
	}
	s.kubectl("create", "namespace", "renewed")
	eventually(t, time.Minute, "default service account in the new namespace (controller-manager)", func() string {
		if _, err := s.tryKubectl("-n", "renewed", "get", "serviceaccount", "default"); err != nil {
			return err.Error()
		}
		return ""
	})
	s.stop()
}

// TestCertificateNodeRenewedWhileRunning: the same for the server's own
// node: the kubelet serves its renewed certificate without a restart
// (ReloadKubeletServerCertificateFile) and the node stays Ready.
func TestCertificateNodeRenewedWhileRunning(t *testing.T) {
	s := newServer(t)
	s.agent = true
	t.Cleanup(func() { killall(t, s.dataDir) })
	sans := hostSANs(t)
	var nodeIP net.IP
	for _, ip := range sans.IPs {
		if ip.To4() != nil && !ip.IsLoopback() && !ip.Equal(net.ParseIP("10.43.0.1")) {
			nodeIP = ip
			break
		}
	}
	if nodeIP == nil {
		t.Fatal("no IPv4 host address for the node")
	}
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	node := strings.ToLower(host)
	issued := time.Now().Add(-(pki.LeafValidity - pki.RenewBefore - 45*time.Second))
	at := func() time.Time { return issued }
	p, _, err := pki.Ensure(pki.Options{Dir: filepath.Join(s.dataDir, "server", "tls"), APIServerSAN: sans, Now: at})
	if err != nil {
		t.Fatal(err)
	}
	nodeDir := filepath.Join(s.dataDir, "agent", "tls")
	if _, err := p.EnsureNode(nodeDir, node, []net.IP{nodeIP}, at); err != nil {
		t.Fatal(err)
	}
	np := pki.PKI{Dir: nodeDir}
	s.start("--node-ip", nodeIP.String())
	oldServing := fileCert(t, np.Cert("serving-kubelet"))
	eventually(t, 3*time.Minute, "certificates renewed while running", func() string {
		if !strings.Contains(s.out.String(), "Renewed certificates") {
			return "no renewal logged yet"
		}
		return ""
	})
	newServing := fileCert(t, np.Cert("serving-kubelet"))
	if bytes.Equal(oldServing, newServing) {
		t.Fatalf("kubelet serving certificate not renewed:\n%s", s.out)
	}
	eventually(t, 2*time.Minute, "the kubelet serves the renewed certificate", func() string {
		conn, err := tls.Dial("tcp", "127.0.0.1:10250", &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			return err.Error()
		}
		defer conn.Close()
		if !bytes.Equal(conn.ConnectionState().PeerCertificates[0].Raw, newServing) {
			return "still the old one"
		}
		return ""
	})
	// The apiserver reaches the kubelet with its renewed client certificate.
	// client-go closes its connections when it notices the new certificate,
	// which can fail a request in flight: a retry succeeds.
	eventually(t, 30*time.Second, "kubelet healthz through the apiserver", func() string {
		if got, err := s.tryKubectl("get", "--raw", "/api/v1/nodes/"+node+"/proxy/healthz"); err != nil || got != "ok" {
			return fmt.Sprintf("%q %v", got, err)
		}
		return ""
	})
	if got := s.kubectl("get", "node", node, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`); got != "True" {
		t.Errorf("node Ready=%q after renewal", got)
	}
	s.stop()
}
