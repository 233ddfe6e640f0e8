// Package componentargs turns kubling's settings and the user's overrides
// (--kube-apiserver-arg, --kubelet-arg, … as key=value) into the
// command-line arguments of an upstream component. Server and node both use it.
package componentargs

import (
	"fmt"
	"sort"
	"strings"
)

// Build merges user overrides ("key=value", leading dashes optional) into
// the defaults and returns sorted --key=value arguments. Empty defaults are
// left out; an override replaces the default of the same key.
func Build(defaults map[string]string, overrides []string) ([]string, error) {
	merged := make(map[string]string, len(defaults)+len(overrides))
	for k, v := range defaults {
		if v != "" {
			merged[k] = v
		}
	}
	for _, o := range overrides {
		k, v, err := ParseOverride(o)
		if err != nil {
			return nil, err
		}
		merged[k] = v
	}
	out := make([]string, 0, len(merged))
	for k, v := range merged {
		out = append(out, "--"+k+"="+v)
	}
	sort.Strings(out)
	return out, nil
}

// ParseOverride splits one user override, "key=value" with optional
// leading dashes.
func ParseOverride(o string) (key, value string, err error) {
	k, v, ok := strings.Cut(strings.TrimLeft(o, "-"), "=")
	if !ok || k == "" {
		return "", "", fmt.Errorf("component argument %q: want key=value", o)
	}
	return k, v, nil
}
