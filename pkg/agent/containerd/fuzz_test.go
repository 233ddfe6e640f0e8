package containerd

import (
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"
)

// A registry name as image references write the registry: a DNS name (any
// case) or IPv4 address, or an IPv6 one in brackets, then maybe a port.
var registryName = regexp.MustCompile(`^(?:([A-Za-z0-9](?:[-A-Za-z0-9]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[-A-Za-z0-9]*[A-Za-z0-9])?)*)|\[([0-9A-Fa-f:.]+)\])(?::([0-9]{1,5}))?$`)

// hostPort says whether name is host[:port] by the rule above, written
// apart from the code under test.
func hostPort(name string) bool {
	m := registryName.FindStringSubmatch(name)
	if m == nil {
		return false
	}
	if m[1] != "" && len(m[1]) > 253 {
		return false
	}
	if m[2] != "" {
		if a, err := netip.ParseAddr(m[2]); err != nil || !a.Is6() {
			return false
		}
	}
	if m[3] != "" {
		if n, _ := strconv.Atoi(m[3]); n < 1 || n > 65535 {
			return false
		}
	}
	return true
}

// FuzzRegistries: registries.yaml, as a user writes it. It loads or fails
// naming the file. When it loads: every mirror's name is host[:port] or
// "*", every config's is host[:port]; each is a single path element; every
// endpoint is an http(s) URL with a host. Its hosts folders render into a
// temporary folder and nothing is written anywhere else: the folder holds
// exactly <registry>/hosts.toml per registry (no link, nothing more), and
// each file is TOML naming the registry's upstream server and its mirrors,
// with the TLS paths as written.
func FuzzRegistries(f *testing.F) {
	for _, s := range []string{
		"mirrors:\n  registry.k8s.io:\n    endpoint: [\"mirror.example.com:5000\", \"http://10.0.0.9:5000/v2-cache\"]\n  docker.io:\n    endpoint: [\"https://hub-mirror.example.com\"]\n  \"*\":\n    endpoint: [\"https://catch-all.example.com\"]\nconfigs:\n  mirror.example.com:5000:\n    auth: {username: kub, password: secret}\n    tls: {ca_file: /etc/ssl/mirror-ca.pem, cert_file: /etc/ssl/c.pem, key_file: /etc/ssl/c.key}\n  private.example.com:\n    tls: {insecure_skip_verify: true}\n",
		"mirrors:\n  \"*\": {endpoint: [\"m.io\"]}\n  Registry.Example.com: {endpoint: [\"m.io\"]}\n  10.0.0.5:5000: {endpoint: [\"m.io\"]}\n  \"[fd00::1]:5000\": {endpoint: [\"m.io\"]}\nconfigs:\n  m.io: {auth: {username: u, password: p}}\n",
		"mirrors:\n  \"[fd00::1]\": {endpoint: [\"https://[fd00::2]/cache\"]}\nconfigs:\n  \"[fd00::2]\": {tls: {ca_file: \"/etc/ca \\\"x\\\"\\n.pem\"}}\n",
		"mirrors:\n  ../../etc/x: {endpoint: [\"m.io\"]}\n",
		"mirrors:\n  a/b: {endpoint: [\"m.io\"]}\n",
		"mirrors:\n  ..: {endpoint: [\"m.io\"]}\n",
		"mirrors:\n  _default: {endpoint: [\"m.io\"]}\n",
		"mirrors:\n  \"\": {endpoint: [\"m.io\"]}\n",
		"mirrors:\n  \"a.io\\u0000x\": {endpoint: [\"m.io\"]}\n",
		"mirrors:\n  fd00::1: {endpoint: [\"m.io\"]}\n",
		"mirrors:\n  \"[a.io]:80\": {endpoint: [\"m.io\"]}\n",
		"mirrors:\n  \"[1.2.3.4]:80\": {endpoint: [\"m.io\"]}\n",
		"mirrors:\n  \"[fe80::1%eth0]:80\": {endpoint: [\"m.io\"]}\n",
		"mirrors:\n  a.io:+80: {endpoint: [\"m.io\"]}\n",
		"mirrors:\n  a.io:65536: {endpoint: [\"m.io\"]}\n",
		"mirrors:\n  m.io:0: {endpoint: [\"m.io\"]}\n",
		"mirrors:\n  5000: {endpoint: [\"m.io\"]}\n",
		"mirrors:\n  docker.io: {endpoint: []}\n",
		"mirrors:\n  docker.io: {endpoint: [\"ftp://x\"]}\n",
		"mirrors:\n  docker.io: {endpoint: [\"https://\"]}\n",
		"mirrors:\n  docker.io: {endpoint: [\"https://../..\"]}\n",
		"mirrors:\n  docker.io: {endpoint: [\"http://u:p@m.io:1/a/../../b?x=1#f\"]}\n",
		"mirrors:\n  docker.io: {endpoint: [\"m.io/%2e%2e/%2e%2e\"]}\n",
		"mirrors:\n  docker.io: {endpoint: [\"m.io\", \"m.io\", \"https://m.io\"]}\n",
		"configs:\n  x.io: {tls: {cert_file: /c}}\n",
		"configs:\n  ../x: {tls: {insecure_skip_verify: true}}\n",
		"configs:\n  \"*\": {auth: {username: u}}\n",
		"configs:\n  x.io: {tls: {ca_file: \"\\u0001\\u007f\\u2028'''\\\"\\\"\\\"\"}}\n",
		"mirror:\n  x: {}\n",
		"mirrors: [\n",
		"mirrors: ~\nconfigs: ~\n",
		"mirrors:\n  a.io: &e {endpoint: [\"m.io\"]}\n  b.io: *e\n",
		"mirrors:\n  a.io: {endpoint: [\"m.io\"]}\n  a.io: {endpoint: [\"n.io\"]}\n",
		"{\"mirrors\": {\"a.io\": {\"endpoint\": [\"m.io\"]}}}",
		"", "~\n", "[]\n", "- x\n", "just text\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		parent := t.TempDir()
		path := filepath.Join(parent, "registries.yaml")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		r, err := LoadRegistries(path)
		if err != nil {
			if !strings.Contains(err.Error(), path) {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		for name, m := range r.Mirrors {
			if name != "*" && !hostPort(name) {
				t.Fatalf("mirror %q accepted: not host[:port] or *", name)
			}
			for _, e := range m.Endpoints {
				u, err := endpointURL(e)
				if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
					t.Fatalf("mirror %q: endpoint %q accepted as %v (%v)", name, e, u, err)
				}
			}
		}
		for name := range r.Configs {
			if !hostPort(name) {
				t.Fatalf("config %q accepted: not host[:port]", name)
			}
		}
		files, err := r.HostsFiles()
		if err != nil {
			t.Fatalf("render: %v", err)
		}
		want := map[string]string{} // folder → registry
		for name := range r.Mirrors {
			want[folder(name)] = name
		}
		for name, c := range r.Configs {
			if c.TLS != nil {
				want[folder(name)] = name
			}
		}
		if len(files) != len(want) {
			t.Fatalf("rendered %d folders, want %d", len(files), len(want))
		}
		for dir, name := range want {
			if dir != filepath.Base(dir) || dir == "." || dir == ".." || strings.ContainsAny(dir, "/\\\x00") {
				t.Fatalf("folder %q is not one path element", dir)
			}
			checkHostsTOML(t, r, name, files[dir])
		}

		sentinel := filepath.Join(parent, "sentinel")
		if err := os.WriteFile(sentinel, []byte("keep"), 0o600); err != nil {
			t.Fatal(err)
		}
		hostsDir := filepath.Join(parent, "certs.d")
		if err := os.MkdirAll(filepath.Join(hostsDir, "stale.example.com"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := r.WriteHostsDir(hostsDir); err != nil {
			t.Fatalf("write: %v", err)
		}
		entries, err := os.ReadDir(parent)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		if !slices.Equal(names, []string{"certs.d", "registries.yaml", "sentinel"}) {
			t.Fatalf("written beside the hosts folder: %q", names)
		}
		if b, err := os.ReadFile(sentinel); err != nil || string(b) != "keep" {
			t.Fatalf("file beside the hosts folder changed: %q %v", b, err)
		}
		seen := map[string]bool{}
		err = filepath.WalkDir(hostsDir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, err := filepath.Rel(hostsDir, p)
			if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
				t.Fatalf("%s is outside %s", p, hostsDir)
			}
			parts := strings.Split(rel, string(filepath.Separator))
			switch {
			case rel == ".":
			case len(parts) == 1 && d.IsDir():
				if _, ok := want[parts[0]]; !ok {
					t.Fatalf("unexpected folder %q", rel)
				}
			case len(parts) == 2 && parts[1] == "hosts.toml" && d.Type().IsRegular():
				b, err := os.ReadFile(p)
				if err != nil || string(b) != string(files[parts[0]]) {
					t.Fatalf("%s holds %q (%v), want %q", rel, b, err, files[parts[0]])
				}
				seen[parts[0]] = true
			default:
				t.Fatalf("unexpected %s (%v)", rel, d.Type())
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(seen) != len(want) {
			t.Fatalf("wrote %d hosts.toml files, want %d", len(seen), len(want))
		}
	})
}

func folder(registry string) string {
	if registry == "*" {
		return "_default"
	}
	return registry
}

// checkHostsTOML reads one rendered hosts.toml back.
func checkHostsTOML(t *testing.T, r *Registries, name string, data []byte) {
	t.Helper()
	var doc struct {
		Server     string `toml:"server"`
		CA         string `toml:"ca"`
		SkipVerify bool   `toml:"skip_verify"`
		Host       map[string]struct {
			Capabilities []string   `toml:"capabilities"`
			CA           string     `toml:"ca"`
			Client       [][]string `toml:"client"`
		} `toml:"host"`
	}
	if err := toml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("%s: hosts.toml is not TOML: %v\n%s", name, err, data)
	}
	if name == "*" {
		if doc.Server != "" {
			t.Fatalf("wildcard names a server %q", doc.Server)
		}
	} else {
		if doc.Server != upstream(name) {
			t.Fatalf("%s: server %q", name, doc.Server)
		}
		if c := r.Configs[name]; c.TLS != nil && (doc.CA != c.TLS.CAFile || doc.SkipVerify != c.TLS.InsecureSkipVerify) {
			t.Fatalf("%s: TLS %q/%v, want %q/%v", name, doc.CA, doc.SkipVerify, c.TLS.CAFile, c.TLS.InsecureSkipVerify)
		}
	}
	wantHosts := map[string]string{} // URL → its host
	for _, e := range r.Mirrors[name].Endpoints {
		u, _ := endpointURL(e)
		wantHosts[u.String()] = u.Host
	}
	if len(doc.Host) != len(wantHosts) {
		t.Fatalf("%s: %d mirrors rendered, want %d:\n%s", name, len(doc.Host), len(wantHosts), data)
	}
	for url, host := range wantHosts {
		h, ok := doc.Host[url]
		if !ok {
			t.Fatalf("%s: mirror %q missing:\n%s", name, url, data)
		}
		if !slices.Equal(h.Capabilities, []string{"pull", "resolve"}) {
			t.Fatalf("%s: mirror %q may %q", name, url, h.Capabilities)
		}
		c := r.Configs[host]
		if c.TLS == nil {
			continue
		}
		if h.CA != c.TLS.CAFile {
			t.Fatalf("%s: mirror %q: ca %q, want %q", name, url, h.CA, c.TLS.CAFile)
		}
		if c.TLS.CertFile != "" && (len(h.Client) != 1 || !slices.Equal(h.Client[0], []string{c.TLS.CertFile, c.TLS.KeyFile})) {
			t.Fatalf("%s: mirror %q: client %q", name, url, h.Client)
		}
	}
}

// The names the fuzz test found wrongly accepted or refused (see
// validRegistryHost): as image references write registries.
func TestRegistryHostNames(t *testing.T) {
	for name, ok := range map[string]bool{
		"registry.k8s.io": true, "Registry.Example.com": true, "10.0.0.5:5000": true, "m.io:65535": true,
		"[fd00::1]:5000": true, "[fd00::1]": true, "localhost": true,
		"fd00::1": false, "[a.io]:80": false, "[1.2.3.4]:80": false, "[fe80::1%eth0]:80": false,
		"a.io:+80": false, "a.io:0": false, "a.io:65536": false, "a.io:": false, ":80": false,
		"": false, "..": false, "../x": false, "a/b": false, "_default": false, "*": false,
	} {
		if err := validRegistryHost(name, false); (err == nil) != ok {
			t.Errorf("%q: accepted %v, want %v (%v)", name, err == nil, ok, err)
		}
	}
	if err := validRegistryHost("*", true); err != nil {
		t.Errorf("wildcard mirror refused: %v", err)
	}
}
