package containerd

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"

	"github.com/kubling/kubling/pkg/fileutil"
)

// DefaultRegistriesFile holds registry mirrors, credentials and TLS
// settings, in the format K3s users know.
const DefaultRegistriesFile = "/etc/kubling/registries.yaml"

// Registries is registries.yaml.
type Registries struct {
	// Mirrors, by registry host ("registry.k8s.io", "docker.io", or "*"
	// for every registry): endpoints tried in order, then the registry.
	Mirrors map[string]Mirror `json:"mirrors"`
	// Configs, by registry or mirror host: credentials and TLS.
	Configs map[string]RegistryConfig `json:"configs"`
}

// Mirror lists a registry's mirrors.
type Mirror struct {
	Endpoints []string `json:"endpoint"`
}

// RegistryConfig is one host's credentials and TLS settings.
type RegistryConfig struct {
	Auth *RegistryAuth `json:"auth,omitempty"`
	TLS  *RegistryTLS  `json:"tls,omitempty"`
}

// RegistryAuth are credentials: a user and password, a base64 "user:pass"
// (auth), or an identity token.
type RegistryAuth struct {
	Username      string `json:"username,omitempty"`
	Password      string `json:"password,omitempty"`
	Auth          string `json:"auth,omitempty"`
	IdentityToken string `json:"identitytoken,omitempty"`
}

// RegistryTLS are a host's TLS settings.
type RegistryTLS struct {
	CAFile             string `json:"ca_file,omitempty"`
	CertFile           string `json:"cert_file,omitempty"`
	KeyFile            string `json:"key_file,omitempty"`
	InsecureSkipVerify bool   `json:"insecure_skip_verify,omitempty"`
}

// LoadRegistries reads path; a missing file is no registries. Unknown keys,
// malformed endpoints and half a client key pair are errors naming the file.
func LoadRegistries(path string) (*Registries, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return &Registries{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("registries file %s: %w", path, err)
	}
	r := &Registries{}
	if err := yaml.UnmarshalStrict(data, r); err != nil {
		return nil, fmt.Errorf("registries file %s: %w", path, err)
	}
	for name, m := range r.Mirrors {
		if err := validRegistryHost(name, true); err != nil {
			return nil, fmt.Errorf("registries file %s: mirrors: %w", path, err)
		}
		if len(m.Endpoints) == 0 {
			return nil, fmt.Errorf("registries file %s: mirror %q lists no endpoint", path, name)
		}
		for _, e := range m.Endpoints {
			if _, err := endpointURL(e); err != nil {
				return nil, fmt.Errorf("registries file %s: mirror %q: %w", path, name, err)
			}
		}
	}
	for host, c := range r.Configs {
		if err := validRegistryHost(host, false); err != nil {
			return nil, fmt.Errorf("registries file %s: configs: %w", path, err)
		}
		if c.TLS != nil && (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
			return nil, fmt.Errorf("registries file %s: configs %q: cert_file and key_file go together", path, host)
		}
	}
	return r, nil
}

// validRegistryHost accepts a registry's name as containerd's hosts folder
// takes it: host[:port] (a DNS name, an IPv4 address or "[v6]", as image
// references write them), or "*" (every registry) among mirrors. These
// names become folder names, so nothing else ("../x", "a/b") may pass.
func validRegistryHost(name string, wildcard bool) error {
	if name == "*" && wildcard {
		return nil
	}
	bad := fmt.Errorf("%q: want a registry host such as registry.example.com or 10.0.0.5:5000", name)
	host := name
	if i := strings.LastIndexByte(name, ':'); i > strings.LastIndexByte(name, ']') {
		port := name[i+1:]
		n, err := strconv.Atoi(port)
		if err != nil || port[0] < '0' || port[0] > '9' || n < 1 || n > 65535 {
			return bad
		}
		host = name[:i]
	}
	if v6, ok := strings.CutPrefix(host, "["); ok {
		v6, ok = strings.CutSuffix(v6, "]")
		if a, err := netip.ParseAddr(v6); ok && err == nil && a.Is6() && a.Zone() == "" {
			return nil
		}
		return bad
	}
	if len(validation.IsDNS1123Subdomain(strings.ToLower(host))) > 0 {
		return bad // an IPv4 address is a DNS-1123 subdomain too
	}
	return nil
}

// endpointURL normalises a mirror endpoint: https unless it says http.
func endpointURL(e string) (*url.URL, error) {
	if !strings.Contains(e, "://") {
		e = "https://" + e
	}
	u, err := url.Parse(e)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("endpoint %q: want [http[s]://]host[:port][/path]", e)
	}
	return u, nil
}

// upstream is the registry's own address, as containerd names it.
func upstream(registry string) string {
	if registry == "docker.io" {
		return "https://registry-1.docker.io"
	}
	return "https://" + registry
}

// HostsFiles renders containerd's hosts.toml per registry (folder name →
// content): its mirrors with their TLS settings, then the registry itself.
func (r *Registries) HostsFiles() (map[string][]byte, error) {
	out := map[string][]byte{}
	tlsOf := func(host string, into map[string]any) {
		c, ok := r.Configs[host]
		if !ok || c.TLS == nil {
			return
		}
		if c.TLS.CAFile != "" {
			into["ca"] = c.TLS.CAFile
		}
		if c.TLS.CertFile != "" {
			into["client"] = [][]string{{c.TLS.CertFile, c.TLS.KeyFile}}
		}
		if c.TLS.InsecureSkipVerify {
			into["skip_verify"] = true
		}
	}
	registries := map[string]bool{}
	for name := range r.Mirrors {
		registries[name] = true
	}
	for host, c := range r.Configs {
		if c.TLS != nil {
			registries[host] = true
		}
	}
	for name := range registries {
		doc := map[string]any{}
		dir := name
		if name == "*" {
			dir = "_default" // containerd's folder for every registry
		} else {
			doc["server"] = upstream(name)
			tlsOf(name, doc)
		}
		hosts := map[string]any{}
		for _, e := range r.Mirrors[name].Endpoints {
			u, _ := endpointURL(e) // checked by LoadRegistries
			h := map[string]any{"capabilities": []string{"pull", "resolve"}}
			tlsOf(u.Host, h)
			hosts[u.String()] = h
		}
		if len(hosts) > 0 {
			doc["host"] = hosts
		}
		data, err := toml.Marshal(doc)
		if err != nil {
			return nil, err
		}
		out[dir] = data
	}
	return out, nil
}

// Auths are the credentials for containerd's CRI registry configs (by
// host). containerd still reads them there, with a deprecation warning:
// hosts.toml has no place for credentials.
func (r *Registries) Auths() map[string]any {
	auths := map[string]any{}
	hosts := make([]string, 0, len(r.Configs))
	for h := range r.Configs {
		hosts = append(hosts, h)
	}
	sort.Strings(hosts)
	for _, h := range hosts {
		a := r.Configs[h].Auth
		if a == nil {
			continue
		}
		auths[h] = map[string]any{"auth": map[string]any{"username": a.Username, "password": a.Password, "auth": a.Auth, "identitytoken": a.IdentityToken}}
	}
	return auths
}

// WriteHostsDir replaces dir's content with the rendered hosts.toml files.
func (r *Registries) WriteHostsDir(dir string) error {
	files, err := r.HostsFiles()
	if err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	for name, data := range files {
		path := filepath.Join(dir, name, "hosts.toml")
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := fileutil.WriteAtomic(path, data, 0o600); err != nil {
			return err
		}
	}
	return os.MkdirAll(dir, 0o755)
}
