package containerd

import (
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"
)

func TestRenderCgroupV1WithoutSysResource(t *testing.T) {
	c := Config{Root: "/var/lib/kubling/agent/containerd", State: "/run/kubling/containerd", PayloadDir: "/var/lib/kubling/data/abc",
		CNIConfDir: "/var/lib/kubling/agent/etc/cni/net.d", CNIPluginDir: "/var/lib/kubling/agent/cni-plugins", RegistryConfigDir: "/var/lib/kubling/agent/etc/containerd/certs.d",
		Snapshotter: "overlayfs", RestrictOOMScoreAdj: true}
	out, err := c.Render()
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := toml.Unmarshal(out, &got); err != nil {
		t.Fatalf("rendered config is not TOML: %v\n%s", err, out)
	}
	plugins := got["plugins"].(map[string]any)
	rt := plugins["io.containerd.cri.v1.runtime"].(map[string]any)
	if rt["restrict_oom_score_adj"] != true {
		t.Errorf("restrict_oom_score_adj not set:\n%s", out)
	}
	runc := rt["containerd"].(map[string]any)["runtimes"].(map[string]any)["runc"].(map[string]any)
	opts := runc["options"].(map[string]any)
	if opts["SystemdCgroup"] != false || opts["BinaryName"] != "/var/lib/kubling/data/abc/bin/runc" {
		t.Errorf("runc options %v", opts)
	}
	cni := rt["cni"].(map[string]any)
	if dirs := cni["bin_dirs"].([]any); len(dirs) != 2 || dirs[0] != "/var/lib/kubling/data/abc/bin" || dirs[1] != "/var/lib/kubling/agent/cni-plugins" {
		t.Errorf("CNI plugin dirs %v: the payload's first, then the add-ons'", cni["bin_dirs"])
	}
	images := plugins["io.containerd.cri.v1.images"].(map[string]any)
	if images["pinned_images"].(map[string]any)["sandbox"] != PauseImage || images["snapshotter"] != "overlayfs" {
		t.Errorf("images %v", images)
	}
	if got["grpc"].(map[string]any)["address"] != "/run/kubling/containerd/containerd.sock" || c.Socket() != "/run/kubling/containerd/containerd.sock" {
		t.Errorf("socket %v", got["grpc"])
	}
	// Keys with dots must stay single (quoted) keys, as containerd expects.
	if !strings.Contains(string(out), "[plugins.'io.containerd.cri.v1.runtime'") && !strings.Contains(string(out), `[plugins."io.containerd.cri.v1.runtime"`) {
		t.Errorf("plugin keys not quoted:\n%s", out)
	}
}

func TestRenderNeedsDirs(t *testing.T) {
	if _, err := (Config{}).Render(); err == nil {
		t.Fatal("empty config rendered")
	}
}

func TestRenderNvidiaRuntimes(t *testing.T) {
	c := Config{Root: "/r", State: "/s", PayloadDir: "/p", CNIConfDir: "/c", CNIPluginDir: "/cp", Snapshotter: "overlayfs",
		Runtimes: map[string]string{"nvidia": "/usr/bin/nvidia-container-runtime", "nvidia-cdi": "/usr/bin/nvidia-container-runtime.cdi"}, DefaultRuntime: "nvidia"}
	out, err := c.Render()
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := toml.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	rt := got["plugins"].(map[string]any)["io.containerd.cri.v1.runtime"].(map[string]any)
	if rt["enable_cdi"] != true {
		t.Errorf("CDI not enabled:\n%s", out)
	}
	ctr := rt["containerd"].(map[string]any)
	if ctr["default_runtime_name"] != "nvidia" {
		t.Errorf("default runtime %v", ctr["default_runtime_name"])
	}
	runtimes := ctr["runtimes"].(map[string]any)
	for name, bin := range c.Runtimes {
		r := runtimes[name].(map[string]any)
		if r["runtime_type"] != "io.containerd.runc.v2" || r["options"].(map[string]any)["BinaryName"] != bin {
			t.Errorf("runtime %s: %v", name, r)
		}
	}
	if runtimes["runc"].(map[string]any)["options"].(map[string]any)["BinaryName"] != "/p/bin/runc" {
		t.Error("runc lost")
	}
	c.RegistryAuths = map[string]any{"mirror:5000": map[string]any{"auth": map[string]any{"username": "u"}}}
	out, err = c.Render()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "mirror:5000") || !strings.Contains(string(out), "config_path") {
		t.Errorf("registry auths not rendered beside config_path:\n%s", out)
	}
	c.DefaultRuntime = "crun"
	if _, err := c.Render(); err == nil {
		t.Error("an unknown default runtime rendered")
	}
}
