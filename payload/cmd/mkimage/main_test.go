package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"syscall"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// entry is what the test reads back of one tar entry.
type entry struct {
	typ        byte
	mode       int64
	uid, gid   int
	link, data string
}

func layerEntries(t *testing.T, rc io.ReadCloser) map[string]entry {
	t.Helper()
	defer rc.Close()
	got := map[string]entry{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return got
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		got[h.Name] = entry{typ: h.Typeflag, mode: h.Mode, uid: h.Uid, gid: h.Gid, link: h.Linkname, data: string(data)}
	}
}

func TestRootfsLayerKeepsWhatIsOnDisk(t *testing.T) {
	root := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "usr/local/bin"), 0o755))
	must(os.WriteFile(filepath.Join(root, "usr/local/bin/nnp"), []byte("nnp"), 0o755))
	must(os.Chmod(filepath.Join(root, "usr/local/bin/nnp"), 0o4755|os.ModeSetuid))
	must(os.WriteFile(filepath.Join(root, "a"), []byte("same"), 0o640))
	must(os.Link(filepath.Join(root, "a"), filepath.Join(root, "b")))
	must(os.Symlink("/dev/stdout", filepath.Join(root, "log")))
	must(syscall.Mkfifo(filepath.Join(root, "fifo"), 0o600))
	if os.Geteuid() == 0 {
		must(os.Lchown(filepath.Join(root, "a"), 1000, 50000))
	}
	bin := filepath.Join(t.TempDir(), "agnhost")
	must(os.WriteFile(bin, []byte("binary"), 0o644))

	out := filepath.Join(t.TempDir(), "img.tar")
	s := spec{
		names: []string{"example.test/a:1", "example.test/a:2"}, rootfs: []string{root},
		files: []string{"agnhost=" + bin}, links: []string{"agnhost-2=agnhost"},
		entrypoint: []string{"/agnhost"}, cmd: []string{"pause"}, stopSignal: "SIGQUIT", out: out,
	}
	must(build(s))

	for _, ref := range s.names {
		tag, err := name.NewTag(ref)
		must(err)
		img, err := tarball.ImageFromPath(out, &tag)
		if err != nil {
			t.Fatalf("%s not in the archive: %v", ref, err)
		}
		cf, err := img.ConfigFile()
		must(err)
		if !reflect.DeepEqual(cf.Config.Entrypoint, []string{"/agnhost"}) || !reflect.DeepEqual(cf.Config.Cmd, []string{"pause"}) || cf.Config.StopSignal != "SIGQUIT" || cf.OS != "linux" {
			t.Errorf("%s config: %+v", ref, cf.Config)
		}
		layers, err := img.Layers()
		must(err)
		if len(layers) != 2 {
			t.Fatalf("%s: %d layers, want the folder's and the files'", ref, len(layers))
		}
		rc, err := layers[0].Uncompressed()
		must(err)
		got := layerEntries(t, rc)
		if e := got["usr/local/bin/nnp"]; e.mode&0o4000 == 0 || e.mode&0o777 != 0o755 {
			t.Errorf("nnp mode %o, want setuid 0755", e.mode)
		}
		if e := got["a"]; e.typ != tar.TypeReg || e.mode&0o777 != 0o640 || e.data != "same" {
			t.Errorf("a: %+v", e)
		}
		if os.Geteuid() == 0 && (got["a"].uid != 1000 || got["a"].gid != 50000) {
			t.Errorf("a owner %d:%d, want 1000:50000", got["a"].uid, got["a"].gid)
		}
		if e := got["b"]; e.typ != tar.TypeLink || e.link != "a" {
			t.Errorf("b: %+v, want a hard link to a", e)
		}
		if e := got["log"]; e.typ != tar.TypeSymlink || e.link != "/dev/stdout" {
			t.Errorf("log: %+v", e)
		}
		if _, ok := got["fifo"]; ok {
			t.Error("a named pipe was packed")
		}
		if _, ok := got["usr/local/bin/"]; !ok {
			t.Error("folders are missing")
		}
		rc, err = layers[1].Uncompressed()
		must(err)
		files := layerEntries(t, rc)
		if e := files["agnhost"]; e.data != "binary" || e.mode != 0o755 {
			t.Errorf("agnhost: %+v", e)
		}
		if e := files["agnhost-2"]; e.typ != tar.TypeSymlink || e.link != "agnhost" {
			t.Errorf("agnhost-2: %+v", e)
		}
	}

	// The same folder packs to the same layer: images share it.
	out2 := filepath.Join(t.TempDir(), "other.tar")
	must(build(spec{names: []string{"example.test/b:1"}, rootfs: []string{root}, out: out2}))
	digest := func(path, ref string) string {
		tag, err := name.NewTag(ref)
		must(err)
		img, err := tarball.ImageFromPath(path, &tag)
		must(err)
		layers, err := img.Layers()
		must(err)
		d, err := layers[0].Digest()
		must(err)
		return d.String()
	}
	if a, b := digest(out, "example.test/a:1"), digest(out2, "example.test/b:1"); a != b {
		t.Errorf("the same folder packed twice: layers %s and %s", a, b)
	}
}

func TestWords(t *testing.T) {
	for in, want := range map[string][]string{
		"":                             {},
		"/agnhost pause":               {"/agnhost", "pause"},
		`["nginx","-g","daemon off;"]`: {"nginx", "-g", "daemon off;"},
	} {
		got, err := words("-cmd", in)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("words(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := words("-cmd", `["a",`); err == nil {
		t.Error("a broken JSON array was accepted")
	}
}

// -raw stores the layer as it is: the archive holds the program's bytes
// verbatim, so the payload's compressor sees them beside its other programs.
func TestRawLayerIsStoredUncompressed(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "coredns")
	program := []byte("\x7fELF a program that compresses well: " + string(make([]byte, 4096)))
	if err := os.WriteFile(bin, program, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, raw := range []bool{true, false} {
		out := filepath.Join(t.TempDir(), "img.tar")
		if err := build(spec{names: []string{"example.test/dns:1"}, files: []string{"coredns=" + bin}, entrypoint: []string{"/coredns"}, out: out, raw: raw}); err != nil {
			t.Fatal(err)
		}
		archive, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if verbatim := bytes.Contains(archive, program); verbatim != raw {
			t.Errorf("raw=%v: program verbatim in the archive = %v", raw, verbatim)
		}
		tag, _ := name.NewTag("example.test/dns:1")
		img, err := tarball.ImageFromPath(out, &tag)
		if err != nil {
			t.Fatal(err)
		}
		layers, err := img.Layers()
		if err != nil || len(layers) != 1 {
			t.Fatalf("layers %d, %v", len(layers), err)
		}
		rc, err := layers[0].Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		if e := layerEntries(t, rc)["coredns"]; e.data != string(program) || e.mode != 0o755 {
			t.Errorf("raw=%v: coredns entry of %d bytes, mode %o", raw, len(e.data), e.mode)
		}
	}
}
