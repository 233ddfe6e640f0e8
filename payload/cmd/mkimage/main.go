// Command mkimage packs files into a Linux OCI image (for this machine's
// architecture, or -arch's) and writes it as
// an image archive (docker-save format) that containerd imports. kubling
// uses it for the embedded pause image, the test images and the images of
// the conformance suite (docs/conformance.md).
//
//	mkimage -name registry.k8s.io/pause:3.10.2 -entrypoint /pause -file pause=bin/pause -out pause.tar
//	mkimage -name kubling.test/busybox:1 -file bin/busybox=/bin/busybox -link bin/sh=busybox -out busybox.tar
//	mkimage -name a:1 -name a:2 -rootfs build/rootfs -file agnhost=bin/agnhost -entrypoint /agnhost -cmd pause -out a.tar
//
// Each -rootfs folder becomes a layer of its own, in order, with the modes,
// owners, symbolic and hard links it has on disk (device nodes, sockets and
// pipes are left out: a container gets its own /dev). The -file and -link
// entries form the last layer; its files are mode 0755. An image built from
// the same -rootfs folder by several commands shares that layer's digest, so
// containerd stores it once.
package main

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/compression"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

// spec is what one run packs.
type spec struct {
	names, rootfs, files, links, env []string
	entrypoint, cmd                  []string
	user, workdir, stopSignal        string
	arch, variant                    string
	out                              string
	zstd, raw                        bool
}

// epoch is every entry's and the image's time: the same inputs give the
// same archive.
var epoch = time.Unix(0, 0)

func main() {
	var s spec
	var names, rootfs, files, links, env list
	var entrypoint, cmd string
	flag.Var(&names, "name", "image reference, e.g. registry.k8s.io/pause:3.10.2; repeatable (one archive, several names)")
	flag.StringVar(&s.out, "out", "", "archive to write")
	flag.StringVar(&s.arch, "arch", runtime.GOARCH, "the image's architecture, as GOARCH names it (amd64, arm64, arm)")
	flag.StringVar(&s.variant, "variant", "", "the architecture's variant, e.g. v7 for arm")
	flag.StringVar(&entrypoint, "entrypoint", "", `entrypoint: words split at spaces, or a JSON array ("[\"sh\",\"-c\",\"a b\"]")`)
	flag.StringVar(&cmd, "cmd", "", "default command (arguments to the entrypoint), as -entrypoint")
	flag.StringVar(&s.user, "user", "", "user to run as, e.g. 65535:65535")
	flag.StringVar(&s.workdir, "workdir", "", "working directory")
	flag.StringVar(&s.stopSignal, "stop-signal", "", "signal that stops the container, e.g. SIGQUIT")
	flag.Var(&rootfs, "rootfs", "folder packed as a layer as it is on disk; repeatable, one layer each")
	flag.Var(&files, "file", "PATH-IN-IMAGE=HOST-FILE, repeatable (mode 0755)")
	flag.Var(&links, "link", "PATH-IN-IMAGE=TARGET symlink, repeatable")
	flag.Var(&env, "env", "KEY=VALUE, repeatable")
	flag.BoolVar(&s.zstd, "zstd", false, "compress layers with zstd at its best level instead of gzip (smaller; containerd 1.5+ reads it)")
	flag.BoolVar(&s.raw, "raw", false, "store layers uncompressed, for an archive that is compressed as a whole with other programs (kubling's payload)")
	flag.Parse()
	s.names, s.rootfs, s.files, s.links, s.env = names, rootfs, files, links, env
	if len(s.names) == 0 || s.out == "" || len(s.files)+len(s.links)+len(s.rootfs) == 0 {
		fail(fmt.Errorf("-name, -out and at least one -rootfs, -file or -link are required"))
	}
	if s.zstd && s.raw {
		fail(fmt.Errorf("-zstd and -raw: choose one"))
	}
	var err error
	if s.entrypoint, err = words("-entrypoint", entrypoint); err != nil {
		fail(err)
	}
	if s.cmd, err = words("-cmd", cmd); err != nil {
		fail(err)
	}
	if err := build(s); err != nil {
		fail(err)
	}
}

// words reads a command line: a JSON array of strings, or words split at
// spaces. Empty is none.
func words(flagName, v string) ([]string, error) {
	if !strings.HasPrefix(strings.TrimSpace(v), "[") {
		return strings.Fields(v), nil
	}
	var w []string
	if err := json.Unmarshal([]byte(v), &w); err != nil {
		return nil, fmt.Errorf("%s %q: not a JSON array of strings: %w", flagName, v, err)
	}
	return w, nil
}

func build(s spec) error {
	tags := make([]name.Tag, 0, len(s.names))
	for _, n := range s.names {
		tag, err := name.NewTag(n)
		if err != nil {
			return fmt.Errorf("-name %q: %w", n, err)
		}
		tags = append(tags, tag)
	}
	var layers []v1.Layer
	for _, dir := range s.rootfs {
		if fi, err := os.Stat(dir); err != nil {
			return fmt.Errorf("-rootfs: %w", err)
		} else if !fi.IsDir() {
			return fmt.Errorf("-rootfs %s: not a folder", dir)
		}
		layer, err := s.layer(func() (io.ReadCloser, error) { return folderTar(dir), nil })
		if err != nil {
			return fmt.Errorf("-rootfs %s: %w", dir, err)
		}
		layers = append(layers, layer)
	}
	if len(s.files)+len(s.links) > 0 {
		raw, err := filesTar(s.files, s.links)
		if err != nil {
			return err
		}
		layer, err := s.layer(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(raw)), nil })
		if err != nil {
			return err
		}
		layers = append(layers, layer)
	}
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		return err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cf = cf.DeepCopy()
	// empty.Image has no platform; containerd and the CRI match on it.
	cf.OS, cf.Architecture, cf.Variant = "linux", s.arch, s.variant
	cf.Created.Time = epoch
	cf.Config.Entrypoint = s.entrypoint
	cf.Config.Cmd = s.cmd
	cf.Config.User = s.user
	cf.Config.WorkingDir = s.workdir
	cf.Config.StopSignal = s.stopSignal
	cf.Config.Env = append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}, s.env...)
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return err
	}
	if len(tags) == 1 {
		return tarball.WriteToFile(s.out, tags[0], img)
	}
	refs := map[name.Reference]v1.Image{}
	for _, t := range tags {
		refs[t] = img
	}
	return tarball.MultiRefWriteToFile(s.out, refs)
}

// layer makes a layer of the tar stream open gives: gzip, zstd (-zstd) or
// as it is (-raw; containerd's importer takes an uncompressed docker-save
// layer as such).
func (s spec) layer(open func() (io.ReadCloser, error)) (v1.Layer, error) {
	switch {
	case s.raw:
		r, err := open()
		if err != nil {
			return nil, err
		}
		defer r.Close()
		b, err := io.ReadAll(r)
		if err != nil {
			return nil, err
		}
		return static.NewLayer(b, types.DockerUncompressedLayer), nil
	case s.zstd:
		return tarball.LayerFromOpener(open, tarball.WithCompression(compression.ZStd), tarball.WithCompressionLevel(19))
	default:
		return tarball.LayerFromOpener(open)
	}
}

// filesTar is the layer of -file and -link entries, with the folders above
// them.
func filesTar(files, links []string) ([]byte, error) {
	var layerTar bytes.Buffer
	tw := tar.NewWriter(&layerTar)
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
			return nil, fmt.Errorf("-file %q: want PATH-IN-IMAGE=HOST-FILE", f)
		}
		dst = strings.TrimPrefix(dst, "/")
		data, err := os.ReadFile(src)
		if err != nil {
			return nil, err
		}
		if err := mkdirs(dst); err != nil {
			return nil, err
		}
		if err := tw.WriteHeader(&tar.Header{Name: dst, Mode: 0o755, Size: int64(len(data)), Typeflag: tar.TypeReg, ModTime: epoch}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	for _, l := range links {
		dst, target, ok := strings.Cut(l, "=")
		if !ok {
			return nil, fmt.Errorf("-link %q: want PATH-IN-IMAGE=TARGET", l)
		}
		dst = strings.TrimPrefix(dst, "/")
		if err := mkdirs(dst); err != nil {
			return nil, err
		}
		if err := tw.WriteHeader(&tar.Header{Name: dst, Linkname: target, Mode: 0o777, Typeflag: tar.TypeSymlink, ModTime: epoch}); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return layerTar.Bytes(), nil
}

// folderTar streams dir as a tar layer, entries in lexical order.
func folderTar(dir string) io.ReadCloser {
	r, w := io.Pipe()
	go func() { w.CloseWithError(writeFolder(w, dir)) }()
	return r
}

func writeFolder(w io.Writer, dir string) error {
	tw := tar.NewWriter(w)
	type inode struct{ dev, ino uint64 }
	seen := map[inode]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil || rel == "." {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		mode := fi.Mode()
		if mode&(fs.ModeDevice|fs.ModeCharDevice|fs.ModeSocket|fs.ModeNamedPipe) != 0 {
			return nil
		}
		link := ""
		if mode&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(path); err != nil {
				return err
			}
		}
		hdr, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		hdr.Name = filepath.ToSlash(rel)
		if fi.IsDir() {
			hdr.Name += "/"
		}
		// Owners by number only: the names are the host's, not the image's.
		hdr.Uname, hdr.Gname = "", ""
		hdr.ModTime, hdr.AccessTime, hdr.ChangeTime = epoch, time.Time{}, time.Time{}
		hdr.Format = tar.FormatPAX
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && mode.IsRegular() && st.Nlink > 1 {
			key := inode{uint64(st.Dev), uint64(st.Ino)}
			if first, ok := seen[key]; ok {
				hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeLink, first, 0
				return tw.WriteHeader(hdr)
			}
			seen[key] = hdr.Name
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if !mode.IsRegular() {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		if _, err := io.Copy(tw, f); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "mkimage:", err)
	os.Exit(1)
}
