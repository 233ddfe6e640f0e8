package bootstrapdata

import (
	"bytes"
	"encoding/base64"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/kubling/kubling/pkg/server/pki"
)

func TestSealOpen(t *testing.T) {
	files := Files{"server-ca.crt": []byte("-----BEGIN CERTIFICATE----- the CA"), "server-ca.key": []byte("-----BEGIN PRIVATE KEY----- the key")}
	blob, err := Seal(files, "0123456789abcdef0123456789abcdef")
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"0123456789abcdef0123456789abcdef"} {
		got, err := Open(blob, secret)
		if err != nil || !Same(got, files) {
			t.Fatalf("Open = %v, %v", got, err)
		}
	}
	if _, err := Open(blob, "another-secret-of-another-cluster"); !errors.Is(err, ErrWrongToken) {
		t.Fatalf("wrong token: %v", err)
	}
	for _, plain := range files {
		if bytes.Contains(blob, plain) || bytes.Contains(blob, []byte(base64.StdEncoding.EncodeToString(plain))) {
			t.Errorf("the sealed bundle shows %q", plain)
		}
	}
	// A changed byte anywhere in the box fails to open.
	tampered := []byte(string(blob))
	i := len(tampered) - 10
	tampered[i] ^= 1
	if _, err := Open(tampered, "0123456789abcdef0123456789abcdef"); err == nil {
		t.Error("a tampered bundle opened")
	}
	again, _ := Seal(files, "0123456789abcdef0123456789abcdef")
	if string(again) == string(blob) {
		t.Error("two seals are identical: salt and nonce are not fresh")
	}
}

// TestCollectWrite carries a real PKI's authorities to a new folder: the
// CAs, their keys, the service-account key and the encryption
// configuration, and no leaf.
func TestCollectWrite(t *testing.T) {
	dir := t.TempDir()
	_, _, err := pki.Ensure(pki.Options{Dir: dir, APIServerSAN: pki.SANs{IPs: []net.IP{net.ParseIP("127.0.0.1")}}})
	if err != nil {
		t.Fatal(err)
	}
	enc := filepath.Join(dir, "encryption-config.yaml")
	if err := os.WriteFile(enc, []byte("kind: EncryptionConfiguration"), 0o600); err != nil {
		t.Fatal(err)
	}
	files, err := Collect(dir, Names(dir, enc))
	if err != nil {
		t.Fatal(err)
	}
	// 4 CAs (no etcd CA without Options.Etcd), their keys, service.key,
	// the encryption configuration.
	if len(files) != 10 {
		t.Fatalf("collected %d files: %v", len(files), keys(files))
	}
	if _, ok := files["serving-kube-apiserver.key"]; ok {
		t.Error("a leaf key is in the bundle")
	}
	to := filepath.Join(t.TempDir(), "tls")
	if err := Write(to, files); err != nil {
		t.Fatal(err)
	}
	back, err := Collect(to, Names(to, filepath.Join(to, "encryption-config.yaml")))
	if err != nil || !Same(back, files) {
		t.Fatalf("written and read back: %v, %v", keys(back), err)
	}
	if st, _ := os.Stat(filepath.Join(to, "server-ca.key")); st.Mode().Perm() != 0o600 {
		t.Errorf("key mode %v", st.Mode().Perm())
	}
	if err := Write(to, Files{"../escape": []byte("x")}); err == nil {
		t.Error("wrote a name with a path")
	}
}

func keys(f Files) []string {
	var out []string
	for k := range f {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
