package containerd

import (
	"archive/tar"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/opencontainers/go-digest"
)

func writeTar(t *testing.T, files map[string]string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "img.tar")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	for _, name := range []string{"layer.tar", "manifest.json", "index.json"} {
		body, ok := files[name]
		if !ok {
			continue
		}
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}

// savedImages names the images the way containerd's importer does, with the
// config digest in either docker-save spelling.
func TestSavedImages(t *testing.T) {
	hex := "2adb86b6d6489b8cafd2ec554f82260bcb4fbac27215cad10baf5a3864e5180c"
	got, err := savedImages(writeTar(t, map[string]string{
		"layer.tar": "big layer first",
		"manifest.json": `[{"Config":"sha256:` + hex + `","RepoTags":["localhost/kubling/coredns:v1.14.7","registry.k8s.io/pause:3.10.2"]},` +
			`{"Config":"` + hex + `.json","RepoTags":["busybox:1"]}]`,
	}))
	want := map[string]digest.Digest{
		"localhost/kubling/coredns:v1.14.7": digest.Digest("sha256:" + hex),
		"registry.k8s.io/pause:3.10.2":      digest.Digest("sha256:" + hex),
		"docker.io/library/busybox:1":       digest.Digest("sha256:" + hex),
	}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("savedImages = %v, %v; want %v", got, err, want)
	}

	// An OCI layout has no manifest.json: never taken as imported.
	if got, err := savedImages(writeTar(t, map[string]string{"index.json": "{}"})); err != nil || len(got) != 0 {
		t.Errorf("OCI layout: %v, %v; want none", got, err)
	}
	for name, manifest := range map[string]string{
		"broken JSON": `[{"Config":`,
		"bad digest":  `[{"Config":"sha256:xyz","RepoTags":["a:1"]}]`,
		"bad tag":     `[{"Config":"sha256:` + hex + `","RepoTags":["library/Busybox:1"]}]`,
	} {
		if _, err := savedImages(writeTar(t, map[string]string{"manifest.json": manifest})); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := savedImages(filepath.Join(t.TempDir(), "missing.tar")); err == nil {
		t.Error("a missing archive: no error")
	}
}
