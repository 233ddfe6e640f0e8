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

	"github.com/klauspost/compress/zstd"
)

// The archive zstd's command writes unpacks with the decoder kubling uses
// (klauspost/compress, default options), and its far matches pay: a
// program repeated 9 MB further on, beyond zstd's default window, costs
// next to nothing.
func TestPackUnpacksWithKublingsDecoder(t *testing.T) {
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
	archive, err := os.ReadFile(filepath.Join(out, "payload.tar.zst"))
	if err != nil {
		t.Fatal(err)
	}
	if max := len(program) + len(filler) + 64<<10; len(archive) > max {
		t.Errorf("archive is %d bytes, want at most %d: the repeated program was not matched", len(archive), max)
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
	zr, err := zstd.NewReader(bytes.NewReader(archive))
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	tr := tar.NewReader(zr)
	seen := 0
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
		seen++
	}
	if seen != len(files) {
		t.Errorf("unpacked %d files, want %d", seen, len(files))
	}
}
