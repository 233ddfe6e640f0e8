package payload

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/zstd"
)

func testPayload(t *testing.T, files map[string]string) *Payload {
	t.Helper()
	var buf bytes.Buffer
	zw, err := zstd.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(zw)
	m := Manifest{Version: "test1", Files: map[string]string{}}
	for name, content := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Size: int64(len(content)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(content))
		sum := sha256.Sum256([]byte(content))
		m.Files[name] = hex.EncodeToString(sum[:])
	}
	tw.Close()
	zw.Close()
	return New(m, buf.Bytes())
}

func TestInstallVerifiesAndReuses(t *testing.T) {
	p := testPayload(t, map[string]string{"bin/runc": "runc-binary", "images/pause.tar": "pause-image"})
	root := t.TempDir()
	dir, unpacked, err := p.Install(root)
	if err != nil || !unpacked {
		t.Fatalf("first install: %v %v", unpacked, err)
	}
	if dir != filepath.Join(root, "test1") {
		t.Fatalf("dir %s", dir)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "bin", "runc")); string(b) != "runc-binary" {
		t.Fatalf("content %q", b)
	}
	if info, _ := os.Stat(filepath.Join(dir, "bin", "runc")); info.Mode().Perm() != 0o755 {
		t.Fatalf("mode %v", info.Mode())
	}
	if _, unpacked, err = p.Install(root); err != nil || unpacked {
		t.Fatalf("unchanged payload unpacked again: %v %v", unpacked, err)
	}

	// A damaged file is noticed and the folder replaced.
	if err := os.WriteFile(filepath.Join(dir, "bin", "runc"), []byte("tampered"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, unpacked, err = p.Install(root); err != nil || !unpacked {
		t.Fatalf("damaged payload not replaced: %v %v", unpacked, err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "bin", "runc")); string(b) != "runc-binary" {
		t.Fatalf("content after repair %q", b)
	}
	entries, _ := os.ReadDir(root)
	if len(entries) != 1 {
		t.Fatalf("leftovers in data/: %v", entries)
	}
}

func TestInstallRejectsArchiveNotMatchingManifest(t *testing.T) {
	p := testPayload(t, map[string]string{"bin/runc": "runc-binary"})
	p.Manifest.Files["bin/runc"] = hex.EncodeToString(make([]byte, 32))
	if _, _, err := p.Install(t.TempDir()); err == nil {
		t.Fatal("archive with wrong hash installed")
	}
}

func TestEmbeddedPayload(t *testing.T) {
	p, err := Embedded()
	if err != nil {
		t.Fatalf("%v (run the tests through `make test`, which builds the payload first)", err)
	}
	for _, want := range []string{"bin/containerd", "bin/containerd-shim-runc-v2", "bin/runc", "bin/bridge", "bin/host-local", "bin/loopback", "bin/portmap", "bin/bandwidth", "bin/crictl", "bin/ctr", "images/pause.tar"} {
		if _, ok := p.Manifest.Files[want]; !ok {
			t.Errorf("embedded payload lacks %s", want)
		}
	}
}
