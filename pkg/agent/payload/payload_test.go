package payload

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
)

func testPayload(t *testing.T, files map[string]string) *Payload {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
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
	for _, want := range []string{"bin/containerd", "bin/containerd-shim-runc-v2", "bin/runc", "bin/bridge", "bin/host-local", "bin/loopback", "bin/portmap", "bin/bandwidth", "bin/crictl", "images/pause.tar", "images/coredns.tar", "iptables/sbin/xtables-nft-multi", "iptables/sbin/xtables-legacy-multi", "iptables/lib/libc.so.6", "iptables/xtables/libxt_MASQUERADE.so"} {
		if _, ok := p.Manifest.Files[want]; !ok {
			t.Errorf("embedded payload lacks %s", want)
		}
	}
}

// TestPruneOldKeepsWhatRuns: after an upgrade, old version folders go,
// except one a running process (a pod's shim) executes from.
func TestPruneOldKeepsWhatRuns(t *testing.T) {
	p := testPayload(t, map[string]string{"bin/runc": "runc-binary"})
	root := t.TempDir()
	if _, _, err := p.Install(root); err != nil {
		t.Fatal(err)
	}
	for _, old := range []string{"v-old-idle", "v-old-running"} {
		if err := os.MkdirAll(filepath.Join(root, old, "bin"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// A fake /proc: one shim of the running old version, one unrelated process.
	proc := t.TempDir()
	for pid, exe := range map[string]string{"100": filepath.Join(root, "v-old-running", "bin", "containerd-shim-runc-v2"), "200": "/usr/bin/sleep"} {
		if err := os.MkdirAll(filepath.Join(proc, pid), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(exe, filepath.Join(proc, pid, "exe")); err != nil {
			t.Fatal(err)
		}
	}
	removed, err := p.PruneOld(root, proc)
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 1 || removed[0] != filepath.Join(root, "v-old-idle") {
		t.Fatalf("removed %v", removed)
	}
	for _, keep := range []string{"test1", "v-old-running"} {
		if _, err := os.Stat(filepath.Join(root, keep)); err != nil {
			t.Errorf("%s was removed: %v", keep, err)
		}
	}
	if err := p.Verify(root); err != nil {
		t.Fatalf("the current payload is damaged after pruning: %v", err)
	}
}
