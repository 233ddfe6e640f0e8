package agent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"k8s.io/klog/v2"

	"github.com/kubling/kubling/pkg/agent/containerd"
	"github.com/kubling/kubling/pkg/agent/nvidia"
	"github.com/kubling/kubling/pkg/datadir"
	"github.com/kubling/kubling/pkg/fileutil"
)

// checkDefaultRuntime refuses, before anything is written, a
// --default-runtime this node does not have.
func checkDefaultRuntime(name string, gpu nvidia.Info) error {
	if name == "" || name == "runc" {
		return nil
	}
	if _, ok := gpu.Runtimes[name]; !ok {
		return fmt.Errorf("--default-runtime %s: this node has no such runtime (NVIDIA: %s)", name, gpu.Summary())
	}
	return nil
}

// setupNvidia registers the NVIDIA container runtimes the host has in
// containerd (with kubling's toolkit settings, see nvidia.ToolkitConfig)
// and sets the default runtime. It returns what it found.
func setupNvidia(l datadir.Layout, defaultRuntime string, ctr *containerd.Config, log klog.Logger) (nvidia.Info, error) {
	gpu := nvidia.Detect("/", os.Getenv("PATH"))
	if gpu.Driver != "" || len(gpu.Runtimes) > 0 {
		log.Info("NVIDIA: "+gpu.Summary(), "driver", gpu.Driver)
	}
	if len(gpu.Runtimes) > 0 {
		host, err := os.ReadFile(nvidia.HostToolkitConfig)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return gpu, fmt.Errorf("read %s: %w", nvidia.HostToolkitConfig, err)
		}
		conf, err := nvidia.ToolkitConfig(host)
		if err != nil {
			return gpu, fmt.Errorf("%s: %w", nvidia.HostToolkitConfig, err)
		}
		path := filepath.Join(l.XDGConfig(), "nvidia-container-runtime", "config.toml")
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return gpu, err
		}
		if err := fileutil.WriteAtomic(path, conf, 0o644); err != nil {
			return gpu, err
		}
		// The runtimes read their configuration from $XDG_CONFIG_HOME.
		ctr.Runtimes, ctr.Env = gpu.Runtimes, append(ctr.Env, "XDG_CONFIG_HOME="+l.XDGConfig())
	}
	if defaultRuntime != "" && defaultRuntime != "runc" {
		if err := checkDefaultRuntime(defaultRuntime, gpu); err != nil {
			return gpu, err
		}
		ctr.DefaultRuntime = defaultRuntime
	}
	return gpu, nil
}
