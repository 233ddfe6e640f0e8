package containerd

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/klog/v2"
)

// TestLogIsRotated runs a stand-in containerd that writes 25 MB and exits
// (the supervisor restarts it): the log never grows past its cap, and
// compressed backups are kept.
func TestLogIsRotated(t *testing.T) {
	dir := t.TempDir()
	payload := filepath.Join(dir, "payload")
	if err := os.MkdirAll(filepath.Join(payload, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	script := "#!/bin/sh\nhead -c 25000000 /dev/zero | tr '\\0' x\nexec sleep 60\n"
	if err := os.WriteFile(filepath.Join(payload, "bin", "containerd"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	logFile := filepath.Join(dir, "logs", "containerd.log")
	cfg := Config{Root: filepath.Join(dir, "root"), State: filepath.Join(dir, "state"), PayloadDir: payload,
		CNIConfDir: filepath.Join(dir, "cni"), CNIPluginDir: filepath.Join(dir, "cni-plugins"), RegistryConfigDir: filepath.Join(dir, "certs.d"), Snapshotter: "native"}
	p := NewProcess(cfg, logFile, klog.Background())
	if err := p.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	var entries []os.DirEntry
	for time.Now().Before(deadline) {
		entries, _ = os.ReadDir(filepath.Dir(logFile))
		gz := 0
		for _, e := range entries {
			if strings.HasSuffix(e.Name(), ".gz") {
				gz++
			}
		}
		if info, err := os.Stat(logFile); gz >= 2 && err == nil && info.Size() >= 4_000_000 {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	gz := 0
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		if info.Size() > LogMaxSizeMB*1024*1024 {
			t.Errorf("%s is %d bytes, over the %d MB cap", e.Name(), info.Size(), LogMaxSizeMB)
		}
		if strings.HasSuffix(e.Name(), ".gz") {
			gz++
		}
	}
	if gz < 2 || gz > LogMaxBackups {
		t.Errorf("%d compressed backups, want 2 to %d: %v", gz, LogMaxBackups, entries)
	}
}
