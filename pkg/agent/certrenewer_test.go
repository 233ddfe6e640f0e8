package agent

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	certutil "k8s.io/client-go/util/cert"

	"github.com/kubling/kubling/pkg/datadir"
	"github.com/kubling/kubling/pkg/join"
)

// writeNodeCert writes a throw-away self-signed certificate for cred.
func writeNodeCert(t *testing.T, l datadir.Layout, cred string, notAfter time.Time) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cred}, NotBefore: notAfter.Add(-365 * 24 * time.Hour), NotAfter: notAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	data, err := certutil.EncodeCertificates(&x509.Certificate{Raw: der})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(l.NodeCert(cred)), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(l.NodeCert(cred), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestCertificatesDue(t *testing.T) {
	now := time.Now()
	day := 24 * time.Hour
	n := &Node{layout: datadir.Layout{Root: t.TempDir()}}
	if due, _ := certificatesDue(n, now); !due {
		t.Fatal("missing certificates not due")
	}
	for _, cred := range join.Credentials {
		writeNodeCert(t, n.layout, cred, now.Add(200*day))
	}
	writeNodeCert(t, n.layout, join.KubeProxy, now.Add(91*day))
	if due, earliest := certificatesDue(n, now); due || !earliest.Equal(now.Add(91*day).Truncate(time.Second)) {
		t.Fatalf("91 days left: due=%v earliest=%v", due, earliest)
	}
	writeNodeCert(t, n.layout, join.KubeletServing, now.Add(89*day))
	if due, _ := certificatesDue(n, now); !due {
		t.Fatal("89 days left: not due")
	}
}
