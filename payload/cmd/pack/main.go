// Command pack turns the built payload folder into the archive kubling
// embeds: a plain tar, plus a manifest of every file's sha256, so kubling can
// check an unpacked copy without reading the archive.
//
// The tar is not compressed: the release artifact is (xz, `make release`),
// and there the payload's programs share a window with kubling's own Go
// code (the runtime, gRPC, protobuf, client-go, the API types). A payload
// compressed on its own hides those matches from xz; amd64, 2026-12-07:
// the artifact is 66 MB with the payload in zstd, 58 MB with it plain
// (docs/benchmarks.md, "The artifact's size").
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
	"path/filepath"
	"sort"
	"time"
)

// Manifest is what kubling reads back (pkg/agent/payload).
type Manifest struct {
	// Version names the unpacked folder: the archive's sha256, shortened.
	Version string            `json:"version"`
	Files   map[string]string `json:"files"` // slash path → sha256 hex
}

func main() {
	dir := flag.String("dir", "", "folder to pack")
	out := flag.String("out", "", "folder to write payload.tar and payload.json into")
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
	archive, err := os.Create(filepath.Join(out, "payload.tar"))
	if err != nil {
		return err
	}
	defer archive.Close()
	whole := sha256.New()
	m := Manifest{Files: map[string]string{}}
	if err := writeTar(io.MultiWriter(archive, whole), dir, paths, m.Files); err != nil {
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
