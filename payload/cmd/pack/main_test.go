package main

import (
	"archive/tar"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// The archive is a plain tar of the folder, in name order, with a
// manifest of each file's sha256 and the archive's as its version.
func TestPackWritesATarAndItsManifest(t *testing.T) {
	dir, out := t.TempDir(), t.TempDir()
	program := make([]byte, 1<<20)
	if _, err := rand.Read(program); err != nil {
		t.Fatal(err)
	}
	filler := make([]byte, 8<<20)
	if _, err := rand.Read(filler); err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{"bin/a": program, "bin/b": filler, "bin/c": program}
	for name, data := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := pack(dir, out); err != nil {
		t.Fatal(err)
	}
	archive, err := os.ReadFile(filepath.Join(out, "payload.tar"))
	if err != nil {
		t.Fatal(err)
	}
	var m Manifest
	js, err := os.ReadFile(filepath.Join(out, "payload.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(js, &m); err != nil {
		t.Fatal(err)
	}
	whole := sha256.Sum256(archive)
	if m.Version != hex.EncodeToString(whole[:])[:16] {
		t.Errorf("version %q is not the archive's sha256", m.Version)
	}
	tr := tar.NewReader(bytes.NewReader(archive))
	var names []string
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(data, files[hdr.Name]) {
			t.Errorf("%s: unpacked content differs", hdr.Name)
		}
		sum := sha256.Sum256(data)
		if m.Files[hdr.Name] != hex.EncodeToString(sum[:]) {
			t.Errorf("%s: manifest sum %s is not the file's", hdr.Name, m.Files[hdr.Name])
		}
		names = append(names, hdr.Name)
	}
	if len(names) != 3 || names[0] != "bin/a" || names[1] != "bin/b" || names[2] != "bin/c" {
		t.Errorf("archive holds %v, want bin/a, bin/b, bin/c in that order", names)
	}
}
