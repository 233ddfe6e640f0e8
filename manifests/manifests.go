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
)

//go:embed *.yaml
var files embed.FS

// Values are what the templates may use.
type Values struct {
	ClusterDNS    string
	ClusterDomain string
	ClusterCIDR   string
	ServiceCIDR   string
	// Registry prefixes bundled image references ("" or "mirror.example/").
	Registry string
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
	t, err := template.New(name).Option("missingkey=error").Parse(string(src))
	if err != nil {
		return nil, fmt.Errorf("add-on %s: %w", name, err)
	}
	var out bytes.Buffer
	if err := t.Execute(&out, v); err != nil {
		return nil, fmt.Errorf("add-on %s: %w", name, err)
	}
	return out.Bytes(), nil
}
