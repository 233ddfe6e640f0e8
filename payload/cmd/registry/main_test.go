package main

import (
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// An archive with two names is served under both, without the registry
// host, with the layers and config the archive holds.
func TestPushServesEveryName(t *testing.T) {
	img, err := random.Image(256, 2)
	if err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(t.TempDir(), "a.tar")
	refs := map[name.Reference]v1.Image{}
	for _, n := range []string{"registry.k8s.io/e2e-test-images/agnhost:2.66.1", "registry.k8s.io/e2e-test-images/agnhost:2.55"} {
		ref, err := name.ParseReference(n)
		if err != nil {
			t.Fatal(err)
		}
		refs[ref] = img
	}
	if err := tarball.MultiRefWriteToFile(archive, refs); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(registry.New(registry.WithBlobHandler(registry.NewDiskBlobHandler(t.TempDir()))))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")

	n, err := pushAll(addr, []string{archive})
	if err != nil || n != 2 {
		t.Fatalf("pushAll = %d, %v; want 2 names", n, err)
	}
	wantConfig, _ := img.ConfigName()
	for _, tag := range []string{"2.66.1", "2.55"} {
		ref, err := name.ParseReference(addr+"/e2e-test-images/agnhost:"+tag, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		got, err := remote.Image(ref)
		if err != nil {
			t.Fatalf("pull %s: %v", ref, err)
		}
		if c, _ := got.ConfigName(); c != wantConfig {
			t.Errorf("%s: config %s, want %s", ref, c, wantConfig)
		}
		layers, err := got.Layers()
		if err != nil || len(layers) != 2 {
			t.Fatalf("%s: %d layers, %v; want 2", ref, len(layers), err)
		}
		for _, l := range layers {
			rc, err := l.Compressed()
			if err != nil {
				t.Fatalf("%s: layer: %v", ref, err)
			}
			rc.Close()
		}
	}
	// The host is not part of the path: no repository under registry.k8s.io.
	withHost, err := name.ParseReference(addr+"/registry.k8s.io/e2e-test-images/agnhost:2.55", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := remote.Image(withHost); err == nil {
		t.Error("the image is also served with the registry host in its path")
	}
}

// A broken archive is an error naming it, and nothing is reported pushed.
func TestPushRejectsABrokenArchive(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.tar")
	if err := os.WriteFile(bad, []byte("not a tar"), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(registry.New())
	defer srv.Close()
	n, err := pushAll(strings.TrimPrefix(srv.URL, "http://"), []string{bad})
	if err == nil || n != 0 || !strings.Contains(err.Error(), bad) {
		t.Fatalf("pushAll = %d, %v; want an error naming %s", n, err, bad)
	}
}
