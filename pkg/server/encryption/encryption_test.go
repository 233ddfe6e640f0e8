package encryption

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestEnsureMakesAKeyOnceAndKeepsIt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tls", "encryption-config.yaml")
	if err := Ensure(path); err != nil {
		t.Fatal(err)
	}
	first, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if info, _ := os.Stat(path); info.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", info.Mode())
	}
	if err := Ensure(path); err != nil {
		t.Fatal(err)
	}
	if again, _ := os.ReadFile(path); !bytes.Equal(first, again) {
		t.Fatal("the key changed on a second start: every Secret would be lost")
	}
	st, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Enabled || st.Provider != "secretbox" || !strings.HasPrefix(st.ActiveKey, "kubling-") || len(st.Keys) != 1 {
		t.Fatalf("status %+v", st)
	}
	if !strings.Contains(string(first), "identity: {}") || strings.Index(string(first), "secretbox") > strings.Index(string(first), "identity") {
		t.Fatalf("secretbox must encrypt writes, identity read what came before:\n%s", first)
	}
	other := filepath.Join(t.TempDir(), "encryption-config.yaml")
	if err := Ensure(other); err != nil {
		t.Fatal(err)
	}
	if o, _ := os.ReadFile(other); bytes.Equal(o, first) {
		t.Fatal("two clusters got the same key")
	}
}

func TestEnsureRefusesADamagedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "encryption-config.yaml")
	if err := os.WriteFile(path, []byte("kind: Nonsense\nfoo: [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Ensure(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("damaged file: %v", err)
	}
	if data, _ := os.ReadFile(path); string(data) != "kind: Nonsense\nfoo: [\n" {
		t.Fatal("a damaged file was replaced: its key might still be needed")
	}
}
