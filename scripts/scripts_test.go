package scripts

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/kubling/kubling/pkg/datadir"
)

// runDirFunc cuts the run_dir shell function out of a script.
func runDirFunc(t *testing.T, script string) string {
	t.Helper()
	start := strings.Index(script, "run_dir() {")
	end := strings.Index(script[max(start, 0):], "\n}\n")
	if start < 0 || end < 0 {
		t.Fatal("no run_dir function in the script")
	}
	return script[start : start+end+3]
}

// TestScriptsNameTheRunDirAsKublingDoes runs each script's run_dir with
// /bin/sh and compares it with pkg/datadir's, so killall and uninstall
// clean the runtime folder the running kubling uses.
func TestScriptsNameTheRunDirAsKublingDoes(t *testing.T) {
	for name, script := range map[string]string{"kubling-killall.sh": Killall, "kubling-uninstall.sh": UninstallBody} {
		fn := runDirFunc(t, script)
		for _, dataDir := range []string{"/var/lib/kubling", "/tmp/kubling-e2e-123", "/srv/data dir/kubling"} {
			out, err := exec.Command("sh", "-c", fn+`run_dir "$1"`, "sh", dataDir).Output()
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if got, want := strings.TrimSpace(string(out)), datadir.New(dataDir).RunDir(); got != want {
				t.Errorf("%s: run_dir %q = %q, kubling uses %q", name, dataDir, got, want)
			}
		}
	}
}
