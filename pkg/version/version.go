// Package version reports kubling's version and those of the components it
// embeds, read from the binary's build information so they never drift from go.mod.
package version

import (
	"fmt"
	"runtime/debug"
	"strings"
)

// Version and GitCommit are set at build time with -ldflags -X.
var (
	Version   = "v0.0.0-dev"
	GitCommit = "unknown"
)

// Components lists the embedded upstream modules shown by `kubling --version`.
func Components() [][2]string {
	want := []struct{ name, module string }{
		{"kubernetes", "k8s.io/kubernetes"},
		{"kine", "github.com/k3s-io/kine"},
		{"etcd", "go.etcd.io/etcd/server/v3"},
		{"containerd", "github.com/containerd/containerd/v2"},
		{"flannel", "github.com/flannel-io/flannel"},
	}
	info, ok := debug.ReadBuildInfo()
	versions := map[string]string{}
	if ok {
		for _, d := range info.Deps {
			v := d.Version
			if d.Replace != nil {
				v = d.Replace.Version
			}
			versions[d.Path] = v
		}
	}
	var out [][2]string
	for _, w := range want {
		if v, ok := versions[w.module]; ok {
			out = append(out, [2]string{w.name, v})
		}
	}
	return out
}

// Kubernetes returns the embedded Kubernetes version, or "unknown".
func Kubernetes() string {
	for _, c := range Components() {
		if c[0] == "kubernetes" {
			return c[1]
		}
	}
	return "unknown"
}

// String is the multi-line text of `kubling --version`.
func String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "kubling version %s (%s)\n", Version, GitCommit)
	for _, c := range Components() {
		fmt.Fprintf(&b, "%s %s\n", c[0], c[1])
	}
	if info, ok := debug.ReadBuildInfo(); ok {
		fmt.Fprintf(&b, "go %s\n", strings.TrimPrefix(info.GoVersion, "go"))
	}
	return b.String()
}
