// Command mkimage packs files into a single-layer linux/amd64 OCI image and
// writes it as an image archive (docker-save format) that containerd
// imports. kubling uses it for the embedded pause image and the test images.
//
//	mkimage -name registry.k8s.io/pause:3.10.2 -entrypoint /pause -file pause=bin/pause -out pause.tar
//	mkimage -name kubling.test/busybox:1 -file bin/busybox=/bin/busybox -link bin/sh=busybox -out busybox.tar
package main

import (
	"archive/tar"
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	var files, links, env list
	ref := flag.String("name", "", "image reference, e.g. registry.k8s.io/pause:3.10.2")
	out := flag.String("out", "", "archive to write")
	entrypoint := flag.String("entrypoint", "", "entrypoint (space-separated)")
	user := flag.String("user", "", "user to run as, e.g. 65535:65535")
	flag.Var(&files, "file", "PATH-IN-IMAGE=HOST-FILE, repeatable (mode 0755)")
	flag.Var(&links, "link", "PATH-IN-IMAGE=TARGET symlink, repeatable")
	flag.Var(&env, "env", "KEY=VALUE, repeatable")
	flag.Parse()
	if *ref == "" || *out == "" || len(files) == 0 {
		fail(fmt.Errorf("-name, -out and at least one -file are required"))
	}
	if err := build(*ref, *out, *entrypoint, *user, files, links, env); err != nil {
		fail(err)
	}
}

func build(ref, out, entrypoint, user string, files, links, env []string) error {
	tag, err := name.NewTag(ref)
	if err != nil {
		return err
	}
	var layerTar bytes.Buffer
	tw := tar.NewWriter(&layerTar)
	epoch := time.Unix(0, 0)
	dirs := map[string]bool{}
	mkdirs := func(path string) error {
		parts := strings.Split(path, "/")
		for i := 1; i < len(parts); i++ {
			d := strings.Join(parts[:i], "/") + "/"
			if dirs[d] {
				continue
			}
			dirs[d] = true
			if err := tw.WriteHeader(&tar.Header{Name: d, Mode: 0o755, Typeflag: tar.TypeDir, ModTime: epoch}); err != nil {
				return err
			}
		}
		return nil
	}
	for _, f := range files {
		dst, src, ok := strings.Cut(f, "=")
		if !ok {
			return fmt.Errorf("-file %q: want PATH-IN-IMAGE=HOST-FILE", f)
		}
		dst = strings.TrimPrefix(dst, "/")
		data, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		if err := mkdirs(dst); err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Name: dst, Mode: 0o755, Size: int64(len(data)), Typeflag: tar.TypeReg, ModTime: epoch}); err != nil {
			return err
		}
		if _, err := tw.Write(data); err != nil {
			return err
		}
	}
	for _, l := range links {
		dst, target, ok := strings.Cut(l, "=")
		if !ok {
			return fmt.Errorf("-link %q: want PATH-IN-IMAGE=TARGET", l)
		}
		dst = strings.TrimPrefix(dst, "/")
		if err := mkdirs(dst); err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Name: dst, Linkname: target, Mode: 0o777, Typeflag: tar.TypeSymlink, ModTime: epoch}); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	raw := layerTar.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(raw)), nil })
	if err != nil {
		return err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cf = cf.DeepCopy()
	// empty.Image has no platform; containerd and the CRI match on it.
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	cf.Created.Time = epoch
	if entrypoint != "" {
		cf.Config.Entrypoint = strings.Fields(entrypoint)
	}
	cf.Config.User = user
	cf.Config.Env = append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}, env...)
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return err
	}
	return tarball.WriteToFile(out, tag, img)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "mkimage:", err)
	os.Exit(1)
}
