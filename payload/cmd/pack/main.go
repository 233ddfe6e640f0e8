// Command pack turns the built payload folder into the archive kubling
// embeds: a tar compressed by zstd's own command (zstdArgs) plus a manifest
// of every file's sha256, so kubling can check an unpacked copy without
// decompressing anything.
//
//	pack -dir build/payload/root -out pkg/agent/payload/assets
package main

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"time"
)

// zstdArgs compress the archive: zstd's level 19 with a 64 MB window
// (--long=26). The payload's programs are Go executables that share much
// of their code (containerd, ctr, crictl, the shim), tens of MB apart in
// the tar; the default 8 MB window never sees those matches. amd64,
// 2026-12-07: 55.3 MB with klauspost/compress's best level (the default
// window), 43.8 MB with its best level and a 128 MB window, 39.7 MB with
// these. Unpacking holds the window in memory once, at first start.
var zstdArgs = []string{"-19", "--long=26", "-T0", "-q", "-c"}

// Manifest is what kubling reads back (pkg/agent/payload).
type Manifest struct {
	// Version names the unpacked folder: the archive's sha256, shortened.
	Version string            `json:"version"`
	Files   map[string]string `json:"files"` // slash path → sha256 hex
}

func main() {
	dir := flag.String("dir", "", "folder to pack")
	out := flag.String("out", "", "folder to write payload.tar.zst and payload.json into")
	flag.Parse()
	if err := pack(*dir, *out); err != nil {
		fmt.Fprintln(os.Stderr, "pack:", err)
		os.Exit(1)
	}
}

func pack(dir, out string) error {
	var paths []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			rel, err := filepath.Rel(dir, p)
			if err != nil {
				return err
			}
			paths = append(paths, filepath.ToSlash(rel))
		} else if !d.IsDir() {
			return fmt.Errorf("%s: only regular files can be packed", p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(paths)
	archive, err := os.Create(filepath.Join(out, "payload.tar.zst"))
	if err != nil {
		return err
	}
	defer archive.Close()
	whole := sha256.New()
	zstd := exec.Command("zstd", zstdArgs...)
	zstd.Stdout = io.MultiWriter(archive, whole)
	zstd.Stderr = os.Stderr
	stdin, err := zstd.StdinPipe()
	if err != nil {
		return err
	}
	if err := zstd.Start(); err != nil {
		return fmt.Errorf("zstd (Debian's zstd package): %w", err)
	}
	m := Manifest{Files: map[string]string{}}
	err = writeTar(stdin, dir, paths, m.Files)
	if cerr := stdin.Close(); err == nil {
		err = cerr
	}
	if werr := zstd.Wait(); err == nil && werr != nil {
		err = fmt.Errorf("zstd: %w", werr)
	}
	if err != nil {
		return err
	}
	if err := archive.Close(); err != nil {
		return err
	}
	m.Version = hex.EncodeToString(whole.Sum(nil))[:16]
	js, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(out, "payload.json"), append(js, '\n'), 0o644)
}

// writeTar writes paths (relative to dir) to w as a tar, recording each
// file's sha256 in sums.
func writeTar(w io.Writer, dir string, paths []string, sums map[string]string) error {
	tw := tar.NewWriter(w)
	for _, rel := range paths {
		data, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(rel)))
		if err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		sums[rel] = hex.EncodeToString(sum[:])
		hdr := &tar.Header{Name: rel, Mode: 0o755, Size: int64(len(data)), Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := tw.Write(data); err != nil {
			return err
		}
	}
	return tw.Close()
}
