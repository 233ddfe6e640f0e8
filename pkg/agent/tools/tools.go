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
	"github.com/kubling/kubling/pkg/datadir"
	"github.com/kubling/kubling/pkg/fileutil"
	"github.com/kubling/kubling/pkg/hostcheck"
)

// Exec replaces the process with the payload's tool (crictl or ctr) for the
// containerd of the data dir l. It returns only on error.
func Exec(tool string, l datadir.Layout, args []string) error {
	p, err := payload.Embedded()
	if err != nil {
		return err
	}
	socket := l.ContainerdSocket()
	if err := p.Verify(l.PayloadRoot()); err != nil {
		// Unpacking replaces the folder a running kubling executes from:
		// only with the data dir's lock, which a running kubling holds.
		lock, lockErr := hostcheck.LockDir(l.Root)
		if lockErr != nil {
			return fmt.Errorf("%s: the payload in %s is missing or damaged (%v) and cannot be repaired now: %w (restarting kubling repairs it)", tool, p.Dir(l.PayloadRoot()), err, lockErr)
		}
		_, _, err = p.Install(l.PayloadRoot())
		lock.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", tool, err)
		}
	}
	dir := p.Dir(l.PayloadRoot())
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
		// Without a config file crictl warns on every call that it found none.
		if conf, err := crictlConfig(l.CrictlConfig(), socket); err == nil {
			setDefault("CRI_CONFIG_FILE", conf)
		}
	case "ctr":
		setDefault("CONTAINERD_ADDRESS", socket)
		setDefault("CONTAINERD_NAMESPACE", containerd.Namespace)
	default:
		return fmt.Errorf("unknown tool %q", tool)
	}
	bin := filepath.Join(dir, "bin", tool)
	if tool == "ctr" {
		// ctr is containerd's executable run under that name
		// (payload/cmd/containerd).
		bin = filepath.Join(dir, "bin", "containerd")
	}
	return syscall.Exec(bin, append([]string{tool}, args...), env)
}

// crictlConfig writes (once) a crictl configuration naming kubling's socket.
func crictlConfig(path, socket string) (string, error) {
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", err
	}
	conf := "runtime-endpoint: unix://" + socket + "\nimage-endpoint: unix://" + socket + "\n"
	return path, fileutil.WriteAtomic(path, []byte(conf), 0o644)
}
