// Package payload holds the helper programs kubling embeds (containerd, the
// runc shim, runc, CNI plugins, ctr, crictl, iptables) and the pause image, and unpacks
// them into a versioned folder under the data dir: verified by hash, re-used
// when unchanged, replaced atomically when not.
package payload

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// Manifest lists the payload's files and their sha256 (written by payload/cmd/pack).
type Manifest struct {
	Version string            `json:"version"`
	Files   map[string]string `json:"files"`
}

// Payload is an archive with its manifest.
type Payload struct {
	Manifest Manifest
	archive  func() (io.ReadCloser, error)
	// released is called after unpacking: the embedded archive's pages
	// (160 MB for amd64) are not needed again by this process.
	released func()
}

// Embedded returns the payload built into this binary.
func Embedded() (*Payload, error) {
	js, err := assets.ReadFile(assetsDir + "/payload.json")
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errors.New("this kubling binary was built without its payload (build it with `make build`)")
	}
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(js, &m); err != nil {
		return nil, fmt.Errorf("payload manifest: %w", err)
	}
	name := assetsDir + "/payload.tar"
	p := &Payload{Manifest: m, archive: func() (io.ReadCloser, error) { return assets.Open(name) }}
	if data, ok := embeddedData(assets, name); ok {
		p.released = func() { _ = releasePages(data) }
	}
	return p, nil
}

// New makes a payload from an archive in memory (tests, tools).
func New(m Manifest, archive []byte) *Payload {
	return &Payload{Manifest: m, archive: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(archive)), nil }}
}

// Dir is where this payload lives under root (datadir.Layout.PayloadRoot),
// one folder per version.
func (p *Payload) Dir(root string) string {
	return filepath.Join(root, p.Manifest.Version)
}

// IptablesDir is where the payload unpacked in dir keeps its iptables
// (pkg/agent/iptables.Bundled).
func IptablesDir(dir string) string { return filepath.Join(dir, "iptables") }

// Install makes sure Dir(root) holds exactly the payload's files and
// returns it. It reports whether it had to unpack.
func (p *Payload) Install(root string) (dir string, unpacked bool, err error) {
	dir = p.Dir(root)
	if p.verify(dir) == nil {
		return dir, false, nil
	}
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", false, err
	}
	tmp, err := os.MkdirTemp(parent, ".unpack-")
	if err != nil {
		return "", false, err
	}
	defer os.RemoveAll(tmp)
	err = p.extract(tmp)
	if p.released != nil {
		p.released()
	}
	if err != nil {
		return "", false, fmt.Errorf("unpack payload: %w", err)
	}
	if err := p.verify(tmp); err != nil {
		return "", false, fmt.Errorf("unpacked payload: %w", err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return "", false, err
	}
	// A damaged copy is replaced as a whole, never edited in place. Running
	// shims keep their (now unlinked) executables until they exit.
	if _, err := os.Stat(dir); err == nil {
		if err := os.RemoveAll(dir); err != nil {
			return "", false, err
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		return "", false, err
	}
	return dir, true, nil
}

// Verify checks that Dir(root) holds exactly the payload's files.
func (p *Payload) Verify(root string) error { return p.verify(p.Dir(root)) }

// PruneOld removes the folders of other payload versions under root (left
// by upgrades) that no running process executes from: shims of pods started
// before an upgrade keep theirs until they exit. procDir is /proc. It
// returns the folders removed.
func (p *Payload) PruneOld(root, procDir string) ([]string, error) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, err
	}
	inUse := map[string]bool{}
	exes, _ := filepath.Glob(filepath.Join(procDir, "[0-9]*", "exe"))
	for _, exe := range exes {
		if target, err := os.Readlink(exe); err == nil {
			if rel, err := filepath.Rel(root, target); err == nil && !strings.HasPrefix(rel, "..") {
				inUse[strings.SplitN(rel, string(filepath.Separator), 2)[0]] = true
			}
		}
	}
	var removed []string
	for _, e := range entries {
		name := e.Name()
		if !e.IsDir() || name == p.Manifest.Version || strings.HasPrefix(name, ".") || inUse[name] {
			continue
		}
		dir := filepath.Join(root, name)
		if err := os.RemoveAll(dir); err != nil {
			return removed, err
		}
		removed = append(removed, dir)
	}
	return removed, nil
}

// verify checks every file of the manifest in dir by sha256.
func (p *Payload) verify(dir string) error {
	for rel, want := range p.Manifest.Files {
		f, err := os.Open(filepath.Join(dir, filepath.FromSlash(rel)))
		if err != nil {
			return err
		}
		h := sha256.New()
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return err
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != want {
			return fmt.Errorf("%s: sha256 %s, want %s", rel, got, want)
		}
	}
	return nil
}

func (p *Payload) extract(dst string) error {
	r, err := p.archive()
	if err != nil {
		return err
	}
	defer r.Close()
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		name := path.Clean(hdr.Name)
		if hdr.Typeflag != tar.TypeReg || !fs.ValidPath(name) {
			return fmt.Errorf("unexpected entry %q in payload", hdr.Name)
		}
		target := filepath.Join(dst, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		f, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
		if err != nil {
			return err
		}
		_, err = io.Copy(f, tr)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
}
