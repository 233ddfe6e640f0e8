package config

import (
	"os"
	"strings"
)

// EnvPrefix starts the environment variable of every flag (KUBLING_TOKEN).
const EnvPrefix = "KUBLING_"

// ChildEnv is the environment for the programs kubling runs (containerd and
// through it the shims, iptables): kubling's own, less its KUBLING_*
// variables, which may hold the token or a datastore password.
func ChildEnv() []string {
	env := os.Environ()
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, EnvPrefix) {
			out = append(out, kv)
		}
	}
	return out
}
