package pki

import (
	"bytes"
	"crypto/x509"
	"crypto/x509/pkix"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	certutil "k8s.io/client-go/util/cert"
	"k8s.io/client-go/util/keyutil"

	"github.com/kubling/kubling/pkg/join"
)

func read(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func leafCert(t *testing.T, p PKI, name string) *x509.Certificate {
	t.Helper()
	certs, err := certutil.ParseCertsPEM(read(t, p.Cert(name)))
	if err != nil {
		t.Fatal(err)
	}
	return certs[0]
}

func opts(dir string) Options {
	return Options{Dir: dir, APIServerSAN: SANs{
		DNSNames: []string{"kubernetes.default.svc.cluster.local", "node1"},
		IPs:      []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("10.43.0.1")},
	}}
}

func TestGenerateThenReuse(t *testing.T) {
	dir := t.TempDir()
	p, written, err := Ensure(opts(dir))
	if err != nil {
		t.Fatal(err)
	}
	if len(written) != 11 {
		t.Fatalf("first start wrote %v, want 4 CAs, the SA key and 6 leaves", written)
	}
	serving := leafCert(t, p, APIServerServing)
	if !slices.Contains(serving.DNSNames, "node1") || !slices.ContainsFunc(serving.IPAddresses, net.ParseIP("10.43.0.1").Equal) {
		t.Fatalf("serving cert SANs %v %v", serving.DNSNames, serving.IPAddresses)
	}
	ca := leafCert(t, p, ServerCA)
	if err := serving.CheckSignatureFrom(ca); err != nil {
		t.Fatalf("serving cert not signed by server CA: %v", err)
	}
	admin := leafCert(t, p, AdminClient)
	if admin.Subject.CommonName != "system:admin" || admin.Subject.Organization[0] != "system:masters" {
		t.Fatalf("admin subject %v", admin.Subject)
	}
	if err := admin.CheckSignatureFrom(leafCert(t, p, ClientCA)); err != nil {
		t.Fatalf("admin cert not signed by client CA: %v", err)
	}
	if info, _ := os.Stat(p.Key(ServerCA)); info.Mode().Perm() != 0o600 {
		t.Fatalf("CA key mode %v", info.Mode())
	}

	before := read(t, p.Cert(AdminClient))
	_, written, err = Ensure(opts(dir))
	if err != nil {
		t.Fatal(err)
	}
	if len(written) != 0 {
		t.Fatalf("second start rewrote %v", written)
	}
	if !bytes.Equal(before, read(t, p.Cert(AdminClient))) {
		t.Fatal("admin cert changed on reuse")
	}
}

func TestNewSANRenewsOnlyServingCert(t *testing.T) {
	dir := t.TempDir()
	p, _, err := Ensure(opts(dir))
	if err != nil {
		t.Fatal(err)
	}
	caBefore := read(t, p.Cert(ServerCA))
	o := opts(dir)
	o.APIServerSAN.DNSNames = append(o.APIServerSAN.DNSNames, "api.example.com")
	_, written, err := Ensure(o)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(written, []string{APIServerServing}) {
		t.Fatalf("wrote %v, want only the serving cert", written)
	}
	if !bytes.Equal(caBefore, read(t, p.Cert(ServerCA))) {
		t.Fatal("CA replaced")
	}
	if !slices.Contains(leafCert(t, p, APIServerServing).DNSNames, "api.example.com") {
		t.Fatal("new SAN missing")
	}
}

func TestExpiringLeavesRenewed(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := Ensure(opts(dir)); err != nil {
		t.Fatal(err)
	}
	o := opts(dir)
	o.Now = func() time.Time { return time.Now().Add(LeafValidity - RenewBefore + time.Hour) }
	_, written, err := Ensure(o)
	if err != nil {
		t.Fatal(err)
	}
	if len(written) != 6 {
		t.Fatalf("renewed %v, want the 6 leaves", written)
	}
}

func TestCACertWithoutKeyIsAnError(t *testing.T) {
	dir := t.TempDir()
	p, _, err := Ensure(opts(dir))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(p.Key(ClientCA)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Ensure(opts(dir)); err == nil {
		t.Fatal("missing CA key accepted")
	}
}

func TestLeafFromForeignCAReplaced(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	pa, _, err := Ensure(opts(a))
	if err != nil {
		t.Fatal(err)
	}
	pb, _, err := Ensure(opts(b))
	if err != nil {
		t.Fatal(err)
	}
	// Copy b's admin cert into a: it is valid but signed by another CA.
	for _, f := range []string{pb.Cert(AdminClient), pb.Key(AdminClient)} {
		data := read(t, f)
		dst := pa.Cert(AdminClient)
		if f == pb.Key(AdminClient) {
			dst = pa.Key(AdminClient)
		}
		if err := os.WriteFile(dst, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	_, written, err := Ensure(opts(a))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(written, []string{AdminClient}) {
		t.Fatalf("wrote %v", written)
	}
}

func TestNodeCertificates(t *testing.T) {
	dir := t.TempDir()
	p, _, err := Ensure(opts(filepath.Join(dir, "server")))
	if err != nil {
		t.Fatal(err)
	}
	nodeDir := filepath.Join(dir, "node")
	ips := []net.IP{net.ParseIP("192.0.2.7")}
	written, err := p.EnsureNode(nodeDir, "node1", ips, nil)
	// kubelet client and serving, kube-proxy, the NetworkPolicy
	// controller; flannel runs as the node.
	if err != nil || !slices.Equal(written, []string{join.KubeletClient, join.KubeletServing, join.KubeProxy, join.NetworkPolicy}) {
		t.Fatalf("%v %v", written, err)
	}
	node := PKI{Dir: nodeDir}
	for _, ca := range []string{ServerCA, ClientCA} {
		want, _ := os.ReadFile(p.Cert(ca))
		if got, err := os.ReadFile(node.Cert(ca)); err != nil || len(want) == 0 || !bytes.Equal(got, want) {
			t.Fatalf("node's copy of %s: %v", ca, err)
		}
	}
	client := leafCert(t, node, join.KubeletClient)
	if client.Subject.CommonName != "system:node:node1" || client.Subject.Organization[0] != "system:nodes" {
		t.Fatalf("kubelet client subject %v", client.Subject)
	}
	if err := client.CheckSignatureFrom(leafCert(t, p, ClientCA)); err != nil {
		t.Fatal(err)
	}
	serving := leafCert(t, node, join.KubeletServing)
	if err := serving.CheckSignatureFrom(leafCert(t, p, KubeletCA)); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(serving.DNSNames, "node1") || !slices.ContainsFunc(serving.IPAddresses, ips[0].Equal) {
		t.Fatalf("serving SANs %v %v", serving.DNSNames, serving.IPAddresses)
	}
	if written, _ := p.EnsureNode(nodeDir, "node1", ips, nil); len(written) != 0 {
		t.Fatalf("re-issued %v", written)
	}
	// A new IP re-issues only the serving certificate.
	written, _ = p.EnsureNode(nodeDir, "node1", append(ips, net.ParseIP("192.0.2.8")), nil)
	if !slices.Equal(written, []string{join.KubeletServing}) {
		t.Fatalf("wrote %v", written)
	}
}

func TestSignNode(t *testing.T) {
	dir := t.TempDir()
	p, _, err := Ensure(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := keyutil.MakeEllipticPrivateKeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	key, err := keyutil.ParsePrivateKeyPEM(keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	// The request asks for more than it may have; the server ignores it.
	csr, err := certutil.MakeCSR(key, &pkix.Name{CommonName: "system:admin", Organization: []string{"system:masters"}}, []string{"evil"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ip := net.ParseIP("192.0.2.9")
	chain, err := p.SignNode(join.KubeletServing, "agent1", []net.IP{ip}, csr, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	certs, err := certutil.ParseCertsPEM(chain)
	if err != nil || len(certs) != 2 {
		t.Fatalf("chain: %v %v", len(certs), err)
	}
	c := certs[0]
	if c.Subject.CommonName != "agent1" || len(c.Subject.Organization) != 0 || slices.Contains(c.DNSNames, "evil") || !slices.ContainsFunc(c.IPAddresses, ip.Equal) {
		t.Fatalf("subject %v, SANs %v %v", c.Subject, c.DNSNames, c.IPAddresses)
	}
	if err := c.CheckSignatureFrom(leafCert(t, p, KubeletCA)); err != nil {
		t.Fatal(err)
	}
	// What a node names in its serving certificate must never pass for the
	// apiserver with clients that trust the server CA.
	if err := c.CheckSignatureFrom(leafCert(t, p, ServerCA)); err == nil {
		t.Fatal(err)
	}
	client, err := p.SignNode(join.KubeletClient, "agent1", nil, csr, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if certs, _ := certutil.ParseCertsPEM(client); certs[0].Subject.CommonName != "system:node:agent1" || certs[0].CheckSignatureFrom(leafCert(t, p, ClientCA)) != nil {
		t.Fatalf("client cert %v", certs[0].Subject)
	}
	if _, err := p.SignNode(join.KubeletClient, "agent1", nil, []byte("junk"), time.Now()); err == nil {
		t.Fatal("junk request signed")
	}
	if _, err := p.SignNode("admin", "agent1", nil, csr, time.Now()); err == nil {
		t.Fatal("unknown credential signed")
	}
}

// TestEtcdCertificates: with Options.Etcd, an etcd CA of its own signs
// etcd's serving, peer and client certificates; without it, none exist.
func TestEtcdCertificates(t *testing.T) {
	dir := t.TempDir()
	o := opts(dir)
	o.Etcd = true
	p, written, err := Ensure(o)
	if err != nil {
		t.Fatal(err)
	}
	if len(written) != 15 {
		t.Fatalf("first start wrote %v, want 5 CAs, the SA key and 9 leaves", written)
	}
	ca := leafCert(t, p, EtcdCA)
	for name, usages := range map[string][]x509.ExtKeyUsage{
		EtcdServer: {x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		EtcdPeer:   {x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		EtcdClient: {x509.ExtKeyUsageClientAuth},
	} {
		c := leafCert(t, p, name)
		if err := c.CheckSignatureFrom(ca); err != nil {
			t.Errorf("%s not signed by the etcd CA: %v", name, err)
		}
		if !slices.Equal(c.ExtKeyUsage, usages) {
			t.Errorf("%s usages %v, want %v", name, c.ExtKeyUsage, usages)
		}
		if err := c.CheckSignatureFrom(leafCert(t, p, ServerCA)); err == nil {
			t.Errorf("%s is signed by the server CA", name)
		}
	}
	if serving := leafCert(t, p, EtcdPeer); !slices.ContainsFunc(serving.IPAddresses, net.ParseIP("127.0.0.1").Equal) {
		t.Errorf("peer certificate names %v", serving.IPAddresses)
	}
	// Rotated (kubling certificate rotate --service etcd): issued anew,
	// by the same CA.
	if _, err := RemoveLeaves([]string{dir}, []string{"etcd"}); err != nil {
		t.Fatal(err)
	}
	if _, written, err = Ensure(o); err != nil || len(written) != 3 {
		t.Fatalf("after rotating etcd, Ensure wrote %v (%v), want its 3 leaves", written, err)
	}
	if err := leafCert(t, p, EtcdServer).CheckSignatureFrom(ca); err != nil {
		t.Errorf("rotated etcd certificate not signed by the etcd CA: %v", err)
	}

	plain := t.TempDir()
	if _, _, err := Ensure(opts(plain)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(PKI{Dir: plain}.Cert(EtcdCA)); err == nil {
		t.Error("an etcd CA without Options.Etcd")
	}
}
