// Package containerd runs containerd (from the payload) as a supervised
// child process with a configuration kubling generates, and imports images
// into it.
package containerd

import (
	"fmt"
	"path/filepath"

	"github.com/pelletier/go-toml/v2"
)

// Namespace is the containerd namespace the CRI (and so the kubelet) uses.
const Namespace = "k8s.io"

// PauseImage is the pod sandbox image; the payload carries it, so a node
// starts pods with no registry.
const PauseImage = "registry.k8s.io/pause:3.10.2"

// Config is what the generated containerd configuration depends on.
type Config struct {
	// Root holds containerd's persistent state (images, snapshots).
	Root string
	// State holds runtime state (sockets, shim state), under /run.
	State string
	// PayloadDir is the unpacked payload: bin/ has runc, the shim and the CNI plugins.
	PayloadDir string
	// CNIConfDir is where the node's CNI conflist is written.
	CNIConfDir string
	// CNIPluginDir holds CNI plugins a pod network add-on installs
	// (Calico's), looked up after the payload's.
	CNIPluginDir string
	// RegistryConfigDir holds hosts.toml files per registry.
	RegistryConfigDir string
	// SystemdCgroup selects the systemd cgroup driver (else cgroupfs); it
	// must match the kubelet's.
	SystemdCgroup bool
	// Snapshotter is overlayfs, or native where overlay is unavailable.
	Snapshotter string
	// RestrictOOMScoreAdj keeps containers from asking for a lower
	// oom_score_adj than containerd's own; needed without CAP_SYS_RESOURCE.
	RestrictOOMScoreAdj bool
	// Runtimes are extra runc-compatible runtimes (the NVIDIA ones), by
	// containerd runtime name, each the path of its binary.
	Runtimes map[string]string
	// DefaultRuntime is the runtime pods without a RuntimeClass get ("" is runc).
	DefaultRuntime string
	// Env is extra environment for containerd, and so for its shims and
	// the runtimes they run.
	Env []string
	// RegistryAuths are credentials by registry host (Registries.Auths).
	RegistryAuths map[string]any
}

// Socket is containerd's gRPC socket.
func (c Config) Socket() string { return filepath.Join(c.State, "containerd.sock") }

// Render returns the containerd configuration (version 3).
func (c Config) Render() ([]byte, error) {
	if c.Root == "" || c.State == "" || c.PayloadDir == "" || c.CNIConfDir == "" || c.CNIPluginDir == "" {
		return nil, fmt.Errorf("containerd config: root, state, payload and CNI dirs are required")
	}
	bin := filepath.Join(c.PayloadDir, "bin")
	runtime := func(binary string) map[string]any {
		return map[string]any{
			"runtime_type": "io.containerd.runc.v2",
			"runtime_path": filepath.Join(bin, "containerd-shim-runc-v2"),
			"options": map[string]any{
				"SystemdCgroup": c.SystemdCgroup,
				"BinaryName":    binary,
				"Root":          filepath.Join(c.State, "runc"),
			},
		}
	}
	runtimes := map[string]any{"runc": runtime(filepath.Join(bin, "runc"))}
	for name, binary := range c.Runtimes {
		runtimes[name] = runtime(binary)
	}
	defaultRuntime := c.DefaultRuntime
	if defaultRuntime == "" {
		defaultRuntime = "runc"
	}
	registry := map[string]any{"config_path": c.RegistryConfigDir}
	if len(c.RegistryAuths) > 0 {
		registry["configs"] = c.RegistryAuths
	}
	if _, ok := runtimes[defaultRuntime]; !ok {
		return nil, fmt.Errorf("containerd config: default runtime %q is not configured", defaultRuntime)
	}
	cfg := map[string]any{
		"version": 3,
		"root":    c.Root,
		"state":   c.State,
		// The payload's containerd links only what a node uses
		// (payload/cmd/containerd/plugins.go); of that, no TCP listener.
		"disabled_plugins": []string{"io.containerd.server.v1.grpc-tcp"},
		"grpc":             map[string]any{"address": c.Socket()},
		"ttrpc":            map[string]any{"address": c.Socket() + ".ttrpc"},
		"plugins": map[string]any{
			"io.containerd.internal.v1.opt": map[string]any{"path": filepath.Join(c.Root, "opt")},
			"io.containerd.shim.v1.manager": map[string]any{
				"socket_dir": filepath.Join(c.State, "s"),
				"env":        []string{"PATH=" + bin + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
			},
			"io.containerd.grpc.v1.cri": map[string]any{
				"stream_server_address": "127.0.0.1",
				"stream_server_port":    "0",
			},
			"io.containerd.cri.v1.images": map[string]any{
				"snapshotter":   c.Snapshotter,
				"pinned_images": map[string]any{"sandbox": PauseImage},
				"registry":      registry,
			},
			"io.containerd.cri.v1.runtime": map[string]any{
				"restrict_oom_score_adj":      c.RestrictOOMScoreAdj,
				"cdi_spec_dirs":               []string{"/etc/cdi", "/var/run/cdi"},
				"ignore_deprecation_warnings": []string{"io.containerd.deprecation/cgroup-v1"},
				"enable_cdi":                  true,
				"containerd": map[string]any{
					"default_runtime_name": defaultRuntime,
					"runtimes":             runtimes,
				},
				"cni": map[string]any{
					"bin_dirs": []string{bin, c.CNIPluginDir},
					"conf_dir": c.CNIConfDir,
				},
			},
		},
	}
	return toml.Marshal(cfg)
}
