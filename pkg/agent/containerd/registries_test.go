package containerd

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"
)

func registries(t *testing.T, content string) (*Registries, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "registries.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return LoadRegistries(path)
}

func TestRegistriesRender(t *testing.T) {
	r, err := registries(t, `
mirrors:
  registry.k8s.io:
    endpoint: ["mirror.example.com:5000", "http://10.0.0.9:5000/v2-cache"]
  docker.io:
    endpoint: ["https://hub-mirror.example.com"]
  "*":
    endpoint: ["https://catch-all.example.com"]
configs:
  mirror.example.com:5000:
    auth: {username: kub, password: secret}
    tls: {ca_file: /etc/ssl/mirror-ca.pem, cert_file: /etc/ssl/c.pem, key_file: /etc/ssl/c.key}
  private.example.com:
    tls: {insecure_skip_verify: true}
`)
	if err != nil {
		t.Fatal(err)
	}
	files, err := r.HostsFiles()
	if err != nil {
		t.Fatal(err)
	}
	var k8s map[string]any
	if err := toml.Unmarshal(files["registry.k8s.io"], &k8s); err != nil {
		t.Fatalf("%v\n%s", err, files["registry.k8s.io"])
	}
	if k8s["server"] != "https://registry.k8s.io" {
		t.Errorf("server %v", k8s["server"])
	}
	hosts := k8s["host"].(map[string]any)
	m := hosts["https://mirror.example.com:5000"].(map[string]any)
	if m["ca"] != "/etc/ssl/mirror-ca.pem" || m["client"].([]any)[0].([]any)[1] != "/etc/ssl/c.key" {
		t.Errorf("mirror TLS %v", m)
	}
	if _, ok := hosts["http://10.0.0.9:5000/v2-cache"]; !ok {
		t.Errorf("http endpoint lost: %v", hosts)
	}
	if !strings.Contains(string(files["docker.io"]), `server = 'https://registry-1.docker.io'`) && !strings.Contains(string(files["docker.io"]), `server = "https://registry-1.docker.io"`) {
		t.Errorf("docker.io upstream:\n%s", files["docker.io"])
	}
	if !strings.Contains(string(files["_default"]), "catch-all.example.com") || strings.Contains(string(files["_default"]), "server") {
		t.Errorf("wildcard mirror:\n%s", files["_default"])
	}
	if !strings.Contains(string(files["private.example.com"]), "skip_verify = true") {
		t.Errorf("TLS-only registry:\n%s", files["private.example.com"])
	}
	auths := r.Auths()
	if len(auths) != 1 || auths["mirror.example.com:5000"].(map[string]any)["auth"].(map[string]any)["password"] != "secret" {
		t.Errorf("auths %v", auths)
	}

	dir := filepath.Join(t.TempDir(), "certs.d")
	if err := os.MkdirAll(filepath.Join(dir, "stale.example.com"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := r.WriteHostsDir(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "stale.example.com")); !os.IsNotExist(err) {
		t.Error("a stale registry folder survived")
	}
	if _, err := os.Stat(filepath.Join(dir, "registry.k8s.io", "hosts.toml")); err != nil {
		t.Error(err)
	}
}

func TestRegistriesRejects(t *testing.T) {
	for content, want := range map[string]string{
		"mirror:\n  x: {}\n":                                 "unknown field",
		"mirrors:\n  docker.io: {endpoint: []}\n":            "lists no endpoint",
		"mirrors:\n  docker.io: {endpoint: [\"ftp://x\"]}\n": "want [http[s]://]host",
		"configs:\n  x.io: {tls: {cert_file: /c}}\n":         "cert_file and key_file go together",
		"mirrors: [\n": "registries file",
		"mirrors:\n  ../../etc/x: {endpoint: [\"m.io\"]}\n":       `mirrors: "../../etc/x": want a registry host`,
		"mirrors:\n  a/b: {endpoint: [\"m.io\"]}\n":               `mirrors: "a/b": want a registry host`,
		"mirrors:\n  m.io:0: {endpoint: [\"m.io\"]}\n":            `"m.io:0": want a registry host`,
		"configs:\n  ../x: {tls: {insecure_skip_verify: true}}\n": `configs: "../x": want a registry host`,
		"configs:\n  \"*\": {auth: {username: u}}\n":              `configs: "*": want a registry host`,
	} {
		if _, err := registries(t, content); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want %q", content, err, want)
		}
	}
	good := "mirrors:\n  \"*\": {endpoint: [\"m.io\"]}\n  Registry.Example.com: {endpoint: [\"m.io\"]}\n  10.0.0.5:5000: {endpoint: [\"m.io\"]}\n  \"[fd00::1]:5000\": {endpoint: [\"m.io\"]}\nconfigs:\n  m.io: {auth: {username: u, password: p}}\n"
	if _, err := registries(t, good); err != nil {
		t.Errorf("good hosts refused: %v", err)
	}
	if r, err := LoadRegistries(filepath.Join(t.TempDir(), "none.yaml")); err != nil || len(r.Mirrors) != 0 {
		t.Errorf("missing file: %v %v", r, err)
	}
}
