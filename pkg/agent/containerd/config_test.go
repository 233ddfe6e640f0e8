package containerd

import (
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"
)

func TestRenderCgroupV1WithoutSysResource(t *testing.T) {
	c := Config{Root: "/var/lib/kubling/agent/containerd", State: "/run/kubling/containerd", PayloadDir: "/var/lib/kubling/data/abc",
		CNIConfDir: "/var/lib/kubling/agent/etc/cni/net.d", RegistryConfigDir: "/var/lib/kubling/agent/etc/containerd/certs.d",
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
