// Package tools runs the container tools kubling carries in its payload —
// crictl and ctr — pointed at kubling's containerd without flags.
package tools

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/kubling/kubling/pkg/agent/containerd"
	"github.com/kubling/kubling/pkg/agent/payload"
)

// Exec replaces the process with the payload's tool (crictl or ctr) for
// dataDir's containerd. It returns only on error.
func Exec(tool, dataDir, socket string, args []string) error {
	p, err := payload.Embedded()
	if err != nil {
		return err
	}
	dir, _, err := p.Install(dataDir)
	if err != nil {
		return fmt.Errorf("%s: %w", tool, err)
	}
	env := os.Environ()
	setDefault := func(key, value string) {
		if os.Getenv(key) == "" {
			env = append(env, key+"="+value)
		}
	}
	switch tool {
	case "crictl":
		setDefault("CONTAINER_RUNTIME_ENDPOINT", "unix://"+socket)
		setDefault("IMAGE_SERVICE_ENDPOINT", "unix://"+socket)
	case "ctr":
		setDefault("CONTAINERD_ADDRESS", socket)
		setDefault("CONTAINERD_NAMESPACE", containerd.Namespace)
	default:
		return fmt.Errorf("unknown tool %q", tool)
	}
	bin := filepath.Join(dir, "bin", tool)
	return syscall.Exec(bin, append([]string{tool}, args...), env)
}
