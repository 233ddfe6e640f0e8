// Package manifests holds the add-on manifests kubling deploys, templated
// with the cluster's values.
package manifests

import (
	"bytes"
	"embed"
	"fmt"
	"sort"
	"strings"
	"text/template"

	"github.com/distribution/reference"
)

//go:embed *.yaml
var files embed.FS

// Values are what the templates may use.
type Values struct {
	ClusterDNS    string
	ClusterDomain string
	ClusterCIDR   string
	ServiceCIDR   string
	// SystemDefaultRegistry replaces the registry of every add-on image
	// ("" keeps them; "mirror.example:5000" turns registry.k8s.io/x:v1
	// into mirror.example:5000/x:v1). An image kubling ships (`bundled
	// "localhost/kubling/x:v1" "registry.k8s.io/x:v1"`) is used as shipped
	// when it is empty, else upstream's from that registry.
	SystemDefaultRegistry string
	// KubeletDir is the kubelet's root folder on the nodes.
	KubeletDir string
	// CNIConfDir is where the nodes' container runtime reads the CNI
	// configuration; CNIPluginDir where it finds an add-on's CNI plugins
	// (after its own).
	CNIConfDir, CNIPluginDir string
	NFS                      NFS
	// LocalPathDefault makes local-path the cluster's default StorageClass.
	LocalPathDefault bool
}

// NFS configures the nfs-csi StorageClass (none when Server is empty).
type NFS struct {
	Server, Share string
	MountOptions  []string
	// ReclaimPolicy is Delete or Retain.
	ReclaimPolicy string
	// Default makes nfs-csi the cluster's default StorageClass.
	Default bool
}

// Names lists the bundled add-ons (file names without .yaml).
func Names() []string {
	entries, _ := files.ReadDir(".")
	var names []string
	for _, e := range entries {
		names = append(names, strings.TrimSuffix(e.Name(), ".yaml"))
	}
	sort.Strings(names)
	return names
}

// Render returns the named add-on's manifest with values filled in.
func Render(name string, v Values) ([]byte, error) {
	src, err := files.ReadFile(name + ".yaml")
	if err != nil {
		return nil, fmt.Errorf("no bundled add-on %q", name)
	}
	funcs := template.FuncMap{
		"image": func(ref string) (string, error) { return Image(ref, v.SystemDefaultRegistry) },
		"list":  func(items ...string) []string { return items },
		"bundled": func(bundled, upstream string) (string, error) {
			if v.SystemDefaultRegistry == "" {
				return bundled, nil
			}
			return Image(upstream, v.SystemDefaultRegistry)
		},
	}
	t, err := template.New(name).Option("missingkey=error").Funcs(funcs).Parse(string(src))
	if err != nil {
		return nil, fmt.Errorf("add-on %s: %w", name, err)
	}
	var out bytes.Buffer
	if err := t.Execute(&out, v); err != nil {
		return nil, fmt.Errorf("add-on %s: %w", name, err)
	}
	return out.Bytes(), nil
}

// Image rewrites an image reference to come from registry instead of its
// own (unchanged when registry is empty).
func Image(ref, registry string) (string, error) {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return "", fmt.Errorf("image %q: %w", ref, err)
	}
	if registry == "" {
		return ref, nil
	}
	out := strings.TrimSuffix(registry, "/") + "/" + reference.Path(named)
	if t, ok := named.(reference.Tagged); ok {
		out += ":" + t.Tag()
	}
	if d, ok := named.(reference.Digested); ok {
		out += "@" + d.Digest().String()
	}
	if _, err := reference.ParseNormalizedNamed(out); err != nil {
		return "", fmt.Errorf("registry %q: %w", registry, err)
	}
	return out, nil
}
