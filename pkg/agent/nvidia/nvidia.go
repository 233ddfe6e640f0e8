// Package nvidia finds what a node offers for NVIDIA GPUs — the driver, the
// GPU device nodes, the NVIDIA container runtimes and CDI specs — and writes
// the container toolkit settings kubling runs them with. Paths are relative
// to a root, so tests use fake trees.
package nvidia

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/pelletier/go-toml/v2"
)

// Label marks nodes with a usable GPU; the device plugin runs only there.
const Label = "nvidia.com/gpu.present"

// RuntimeClass (and containerd runtime) that runs containers with GPUs.
const RuntimeClass = "nvidia"

// runtimeBinaries are the NVIDIA runtimes kubling registers in containerd,
// by containerd runtime name.
var runtimeBinaries = map[string]string{
	"nvidia":     "nvidia-container-runtime",
	"nvidia-cdi": "nvidia-container-runtime.cdi",
}

// wellKnownDirs hold the runtimes when they are not on PATH: the GPU
// Operator's toolkit, and the packages'.
var wellKnownDirs = []string{"/usr/local/nvidia/toolkit", "/run/nvidia/toolkit", "/usr/bin", "/usr/local/bin", "/usr/sbin"}

// Info is what Detect found.
type Info struct {
	// Driver is the driver's version line ("" without a driver).
	Driver string
	// Devices are the GPU device nodes (/dev/nvidia0, …).
	Devices []string
	// Runtimes maps containerd runtime names to runtime binaries.
	Runtimes map[string]string
	// CDISpecs are CDI spec files that describe NVIDIA devices.
	CDISpecs []string
}

// GPU says whether the host has a driver and at least one GPU.
func (i Info) GPU() bool { return i.Driver != "" && len(i.Devices) > 0 }

// Usable says whether containers can be given GPUs here the way the bundled
// device plugin works: a GPU, and the runtime behind RuntimeClass nvidia.
func (i Info) Usable() bool { return i.GPU() && i.Runtimes[RuntimeClass] != "" }

// Summary is one line for the log.
func (i Info) Summary() string {
	switch {
	case i.Driver == "":
		return "no NVIDIA driver"
	case len(i.Devices) == 0:
		return "NVIDIA driver but no GPU device nodes"
	case !i.Usable():
		return "NVIDIA GPU but no nvidia-container-runtime: install the NVIDIA container toolkit"
	}
	names := make([]string, 0, len(i.Runtimes))
	for n := range i.Runtimes {
		names = append(names, n)
	}
	sort.Strings(names)
	return fmt.Sprintf("%d NVIDIA GPU(s), runtimes %v, %d CDI spec(s)", len(i.Devices), names, len(i.CDISpecs))
}

// Detect looks under root: /proc/driver/nvidia/version, /dev/nvidia<N>,
// the runtimes on searchPath (a PATH value) and in well-known folders, and
// CDI specs in /etc/cdi and /var/run/cdi.
func Detect(root, searchPath string) Info {
	at := func(p string) string { return filepath.Join(root, p) }
	var info Info
	if v, err := os.ReadFile(at("/proc/driver/nvidia/version")); err == nil {
		line, _, _ := strings.Cut(strings.TrimSpace(string(v)), "\n")
		info.Driver = strings.TrimSpace(line)
	}
	devices, _ := filepath.Glob(at("/dev/nvidia[0-9]*"))
	for _, d := range devices {
		info.Devices = append(info.Devices, strings.TrimPrefix(d, root))
	}
	dirs := append(filepath.SplitList(searchPath), wellKnownDirs...)
	for name, bin := range runtimeBinaries {
		for _, dir := range dirs {
			if dir == "" || !filepath.IsAbs(dir) {
				continue
			}
			p := filepath.Join(dir, bin)
			if st, err := os.Stat(at(p)); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
				if info.Runtimes == nil {
					info.Runtimes = map[string]string{}
				}
				info.Runtimes[name] = p
				break
			}
		}
	}
	for _, dir := range CDIDirs {
		entries, _ := os.ReadDir(at(dir))
		for _, e := range entries {
			if e.IsDir() || !(strings.HasSuffix(e.Name(), ".yaml") || strings.HasSuffix(e.Name(), ".json")) {
				continue
			}
			p := filepath.Join(dir, e.Name())
			if data, err := os.ReadFile(at(p)); err == nil && bytes.Contains(data, []byte("nvidia.com/gpu")) {
				info.CDISpecs = append(info.CDISpecs, p)
			}
		}
	}
	return info
}

// CDIDirs are where containerd reads CDI specs.
var CDIDirs = []string{"/etc/cdi", "/var/run/cdi"}

// ToolkitConfig returns the NVIDIA container runtime configuration kubling
// runs its containerd's runtimes with: the host's own (hostConfig, may be
// empty) with two settings forced, so a container gets GPUs only through
// the device plugin's volume mounts and never because its image sets
// NVIDIA_VISIBLE_DEVICES (as CUDA images do) — the leak that otherwise
// hands every GPU to pods that asked for none when nvidia is the default
// runtime.
func ToolkitConfig(hostConfig []byte) ([]byte, error) {
	cfg := map[string]any{}
	if len(bytes.TrimSpace(hostConfig)) > 0 {
		if err := toml.Unmarshal(hostConfig, &cfg); err != nil {
			return nil, fmt.Errorf("NVIDIA container runtime config: %w", err)
		}
	}
	cfg["accept-nvidia-visible-devices-envvar-when-unprivileged"] = false
	cfg["accept-nvidia-visible-devices-as-volume-mounts"] = true
	return toml.Marshal(cfg)
}

// HostToolkitConfig is where the toolkit's packages keep its configuration.
const HostToolkitConfig = "/etc/nvidia-container-runtime/config.toml"
