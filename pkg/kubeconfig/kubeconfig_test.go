package kubeconfig

import (
	"os"
	"path/filepath"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
)

func TestWriteEmbeddedAndReferenced(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"ca.crt", "c.crt", "c.key"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("data-"+f), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	spec := Spec{Server: "https://127.0.0.1:6443", CAFile: filepath.Join(dir, "ca.crt"), CertFile: filepath.Join(dir, "c.crt"), KeyFile: filepath.Join(dir, "c.key")}

	emb := filepath.Join(dir, "sub", "admin.yaml")
	spec.Embed = true
	if err := Write(emb, spec, 0o640); err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.LoadFromFile(emb)
	if err != nil {
		t.Fatal(err)
	}
	if string(cfg.Clusters["default"].CertificateAuthorityData) != "data-ca.crt" || cfg.Clusters["default"].Server != spec.Server {
		t.Fatalf("embedded kubeconfig wrong: %+v", cfg.Clusters["default"])
	}
	if info, _ := os.Stat(emb); info.Mode().Perm() != 0o640 {
		t.Fatalf("mode %v", info.Mode())
	}

	ref := filepath.Join(dir, "ref.yaml")
	spec.Embed = false
	if err := Write(ref, spec, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err = clientcmd.LoadFromFile(ref)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.AuthInfos["default"].ClientKey != spec.KeyFile {
		t.Fatalf("referenced kubeconfig wrong: %+v", cfg.AuthInfos["default"])
	}
}
