package encryption

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParseConfiguration: no encryption configuration (the file, or the
// copy another server sealed into the datastore) panics its readers:
// parsing it as kubling's, placing it in a rotation, or status.
func FuzzParseConfiguration(f *testing.F) {
	dir := f.TempDir()
	path := filepath.Join(dir, "encryption-config.yaml")
	if err := Ensure(path); err != nil {
		f.Fatal(err)
	}
	made, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(made, made)
	f.Add([]byte("resources: [{resources: [secrets], providers: [{secretbox: {keys: [{name: kubling-20260101T000000Z, secret: QUFB}]}}, {identity: {}}]}]"), made)
	f.Add([]byte("kind: EncryptionConfiguration\nresources: null"), []byte("{"))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		m, err := parseManaged(a)
		if err == nil {
			_ = m.keys()
			_, _ = m.progress()
		}
		_ = Newer(a, b)
		p := filepath.Join(t.TempDir(), "c.yaml")
		if err := os.WriteFile(p, a, 0o600); err != nil {
			t.Fatal(err)
		}
		_, _ = Read(p)
	})
}
