// Package fakefs makes fake host trees (/proc, /sys, /dev, /usr/bin …) for
// tests of code that reads the host through a root folder.
package fakefs

import (
	"os"
	"path/filepath"
	"testing"
)

// Tree writes files (path below the root → content) into a temporary root
// and returns it. Files are executable, so fake programs can be found.
func Tree(t testing.TB, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, content := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return root
}
