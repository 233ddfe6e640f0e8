package scripts

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubling/kubling/pkg/datadir"
)

// dirsFunc cuts the kubling_dirs shell function out of a script.
func dirsFunc(t *testing.T, script string) string {
	t.Helper()
	start := strings.Index(script, "kubling_dirs() {")
	end := strings.Index(script[max(start, 0):], "\n}\n")
	if start < 0 || end < 0 {
		t.Fatal("no kubling_dirs function in the script")
	}
	return script[start : start+end+3]
}

// TestScriptsNameTheDirsAsKublingDoes runs each script's kubling_dirs with
// /bin/sh and compares it with what kubling makes of the same --data-dir
// (absolute, clean; pkg/datadir's run dir), so killall and uninstall clean
// the folders the running kubling uses.
func TestScriptsNameTheDirsAsKublingDoes(t *testing.T) {
	for name, script := range map[string]string{"kubling-killall.sh": Killall, "kubling-uninstall.sh": UninstallBody} {
		fn := dirsFunc(t, script)
		for _, given := range []string{"/var/lib/kubling", "/var/lib/kubling/", "/var/lib//kubling", "/tmp/kubling-e2e-123", "/srv/data dir/../kubling/", "relative/data"} {
			out, err := exec.Command("sh", "-c", fn+`kubling_dirs "$1"; echo "$DATA_DIR"; echo "$RUN_DIR"`, "sh", given).Output()
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			abs, err := filepath.Abs(given)
			if err != nil {
				t.Fatal(err)
			}
			want := abs + "\n" + datadir.New(abs).RunDir()
			if got := strings.TrimSpace(string(out)); got != want {
				t.Errorf("%s: kubling_dirs %q gave\n%s\nkubling uses\n%s", name, given, got, want)
			}
		}
	}
}
