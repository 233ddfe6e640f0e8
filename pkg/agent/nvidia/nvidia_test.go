package nvidia

import (
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"

	"github.com/kubling/kubling/internal/fakefs"
)

func TestNoGPU(t *testing.T) {
	info := Detect(fakefs.Tree(t, map[string]string{"proc/cpuinfo": ""}), "/usr/bin")
	if info.GPU() || info.Usable() || info.Summary() != "no NVIDIA driver" {
		t.Fatalf("%+v %s", info, info.Summary())
	}
}

func TestGPUWithRuntimeOnPath(t *testing.T) {
	root := fakefs.Tree(t, map[string]string{
		"proc/driver/nvidia/version":           "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.14\nGCC version: 12\n",
		"dev/nvidia0":                          "",
		"dev/nvidia1":                          "",
		"dev/nvidiactl":                        "",
		"opt/nv/bin/nvidia-container-runtime":  "#!",
		"usr/bin/nvidia-container-runtime.cdi": "#!",
		"etc/cdi/nvidia.yaml":                  "cdiVersion: 0.5.0\nkind: nvidia.com/gpu\n",
		"etc/cdi/other.yaml":                   "kind: vendor.example/fpga\n",
	})
	info := Detect(root, "/opt/nv/bin:relative/dir")
	if !info.Usable() || len(info.Devices) != 2 || !strings.Contains(info.Driver, "550.54.14") {
		t.Fatalf("%+v", info)
	}
	if info.Runtimes["nvidia"] != "/opt/nv/bin/nvidia-container-runtime" || info.Runtimes["nvidia-cdi"] != "/usr/bin/nvidia-container-runtime.cdi" {
		t.Fatalf("runtimes %v", info.Runtimes)
	}
	if len(info.CDISpecs) != 1 || info.CDISpecs[0] != "/etc/cdi/nvidia.yaml" {
		t.Fatalf("CDI specs %v", info.CDISpecs)
	}
	if !strings.Contains(info.Summary(), "2 NVIDIA GPU(s), runtimes [nvidia nvidia-cdi]") {
		t.Fatal(info.Summary())
	}
}

func TestGPUWithoutToolkit(t *testing.T) {
	info := Detect(fakefs.Tree(t, map[string]string{"proc/driver/nvidia/version": "NVRM version: 550\n", "dev/nvidia0": ""}), "/usr/bin")
	if !info.GPU() || info.Usable() || !strings.Contains(info.Summary(), "install the NVIDIA container toolkit") {
		t.Fatalf("%+v %s", info, info.Summary())
	}
	// CDI specs or the CDI runtime alone do not make the node one for the
	// device plugin, which runs with RuntimeClass nvidia.
	cdiOnly := Detect(fakefs.Tree(t, map[string]string{"proc/driver/nvidia/version": "NVRM\n", "dev/nvidia0": "", "etc/cdi/nvidia.yaml": "kind: nvidia.com/gpu\n", "usr/bin/nvidia-container-runtime.cdi": "#!"}), "")
	if cdiOnly.Usable() || cdiOnly.Runtimes["nvidia-cdi"] == "" {
		t.Fatalf("%+v", cdiOnly)
	}
}

func TestOperatorToolkitFound(t *testing.T) {
	info := Detect(fakefs.Tree(t, map[string]string{"proc/driver/nvidia/version": "NVRM\n", "dev/nvidia0": "", "usr/local/nvidia/toolkit/nvidia-container-runtime": "#!"}), "")
	if info.Runtimes["nvidia"] != "/usr/local/nvidia/toolkit/nvidia-container-runtime" {
		t.Fatalf("%v", info.Runtimes)
	}
}

func TestToolkitConfigKeepsHostSettings(t *testing.T) {
	out, err := ToolkitConfig([]byte("disable-require = false\n[nvidia-container-cli]\nroot = \"/run/nvidia/driver\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := map[string]any{}
	if err := toml.Unmarshal(out, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg["accept-nvidia-visible-devices-envvar-when-unprivileged"] != false || cfg["accept-nvidia-visible-devices-as-volume-mounts"] != true {
		t.Fatalf("leak settings missing: %v", cfg)
	}
	if cli, _ := cfg["nvidia-container-cli"].(map[string]any); cli["root"] != "/run/nvidia/driver" {
		t.Fatalf("host setting lost: %v", cfg)
	}
	if _, err := ToolkitConfig([]byte("not toml [")); err == nil {
		t.Fatal("broken host config accepted")
	}
}
