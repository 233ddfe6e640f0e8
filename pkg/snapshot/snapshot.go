// Package snapshot keeps the folder of datastore snapshots: it saves one
// (through the datastore's Snapshotter, compressed if asked), lists, deletes
// and prunes them. `kubling snapshot` and the server's schedule both use it.
//
// A snapshot is named <name>-<node>-<unix seconds>, with .zst when
// compressed, as K3s names its etcd snapshots; what a file holds (SQLite or
// etcd) is read from its content, not its name.
package snapshot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/kubling/kubling/pkg/datastore"
	"github.com/kubling/kubling/pkg/fileutil"
)

// Names of the snapshots kubling takes itself.
const (
	OnDemand  = "on-demand" // kubling snapshot save without --name
	Scheduled = "scheduled" // the server's --snapshot-schedule-cron
)

// compressedExt ends the name of a compressed snapshot.
const compressedExt = ".zst"

// nameRE is what --name may be: it becomes the start of a file name.
var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9._-]{0,62}[a-z0-9])?$`)

// CheckName refuses a --name that cannot start a snapshot's file name.
func CheckName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("--name %q: want lower-case letters, digits, '.', '_' or '-' (at most 64), such as before-upgrade", name)
	}
	return nil
}

// File is one snapshot in the folder.
type File struct {
	// Name is the file's name; Path its path.
	Name, Path string
	// Group is <name>-<node>: the snapshots Prune counts together.
	Group   string
	Created time.Time
	Size    int64
	Info    datastore.SnapshotInfo
}

// Save writes a snapshot of store into dir, named after name and node,
// compressed with zstd if asked, and returns it. The file appears whole or
// not at all.
func Save(ctx context.Context, store datastore.Snapshotter, dir, name, node string, compress bool, now time.Time) (File, error) {
	if err := CheckName(name); err != nil {
		return File{}, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return File{}, fmt.Errorf("snapshot folder: %w", err)
	}
	if err := CheckDir(dir, now); err != nil {
		return File{}, err
	}
	base := fmt.Sprintf("%s-%s-%d", name, node, now.Unix())
	path := filepath.Join(dir, base)
	if compress {
		path += compressedExt
	}
	if _, err := os.Lstat(path); err == nil {
		return File{}, fmt.Errorf("snapshot %s already exists (one per name and second)", path)
	}
	if !compress {
		if err := store.Snapshot(ctx, path); err != nil {
			return File{}, err
		}
	} else {
		// The plain snapshot first, hidden, then compressed in place.
		plain := filepath.Join(dir, "."+base+".uncompressed")
		defer os.Remove(plain)
		if err := store.Snapshot(ctx, plain); err != nil {
			return File{}, err
		}
		if err := fileutil.Replace(path, func(tmp string) error { return compressFile(plain, tmp) }); err != nil {
			return File{}, fmt.Errorf("compress snapshot %s: %w", path, err)
		}
	}
	return Read(path)
}

// staleAfter is when a hidden file of a save (the plain copy of a
// compressed one, a file being written) is taken as left by a save that
// crashed: no save of an edge device's datastore takes that long.
const staleAfter = time.Hour

// CheckDir refuses a snapshot folder that others may write to (a snapshot
// swapped in there would be restored, with its Secrets and keys) or that
// another user owns, and removes what saves that crashed left in it. A
// missing folder is fine: Save makes it, root's alone.
func CheckDir(dir string, now time.Time) error {
	st, err := os.Stat(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("snapshot folder: %w", err)
	}
	if !st.IsDir() {
		return fmt.Errorf("snapshot folder %s is not a folder", dir)
	}
	if st.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("snapshot folder %s can be written by group or others (mode %04o): chmod go-w it, or choose another --snapshot-dir", dir, st.Mode().Perm())
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok && int(sys.Uid) != os.Geteuid() {
		return fmt.Errorf("snapshot folder %s belongs to user %d, not to the user kubling runs as (%d): chown it, or choose another --snapshot-dir", dir, sys.Uid, os.Geteuid())
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("snapshot folder: %w", err)
	}
	for _, e := range entries {
		n := e.Name()
		if !strings.HasPrefix(n, ".") || !e.Type().IsRegular() || (!strings.HasSuffix(n, ".uncompressed") && !strings.Contains(n, ".tmp")) {
			continue
		}
		if info, err := e.Info(); err == nil && now.Sub(info.ModTime()) > staleAfter {
			os.Remove(filepath.Join(dir, n))
		}
	}
	return nil
}

func compressFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	zw, err := zstd.NewWriter(out)
	if err != nil {
		out.Close()
		return err
	}
	if _, err := io.Copy(zw, in); err != nil {
		zw.Close()
		out.Close()
		return err
	}
	if err := zw.Close(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// Read describes the snapshot file at path.
func Read(path string) (File, error) {
	st, err := os.Stat(path)
	if err != nil {
		return File{}, err
	}
	info, err := datastore.ReadSnapshotInfo(path)
	if err != nil {
		return File{}, err
	}
	f := File{Name: filepath.Base(path), Path: path, Size: st.Size(), Info: info, Created: st.ModTime()}
	f.Group, f.Created = parseName(f.Name, st.ModTime())
	return f, nil
}

// parseName splits <name>-<node>-<unix> into its group (<name>-<node>:
// node names hold '-' too, so the two are kept together) and its time; a
// file named otherwise is its own group, dated by its modification time.
func parseName(file string, mtime time.Time) (group string, created time.Time) {
	base := strings.TrimSuffix(file, compressedExt)
	i := strings.LastIndex(base, "-")
	if i < 0 {
		return base, mtime
	}
	sec, err := strconv.ParseInt(base[i+1:], 10, 64)
	if err != nil {
		return base, mtime
	}
	return base[:i], time.Unix(sec, 0)
}

// List returns the snapshots in dir, oldest first. Files that are not
// snapshots (of either kind) are left out; a missing folder has none.
func List(dir string) ([]File, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []File
	for _, e := range entries {
		if !e.Type().IsRegular() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		f, err := Read(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		out = append(out, f)
	}
	slices.SortFunc(out, func(a, b File) int { return a.Created.Compare(b.Created) })
	return out, nil
}

// Delete removes the named snapshots from dir. A name that is not a
// snapshot there is an error, and nothing is removed.
func Delete(dir string, names []string) ([]string, error) {
	var paths []string
	for _, n := range names {
		if n != filepath.Base(n) || strings.HasPrefix(n, ".") {
			return nil, fmt.Errorf("%q: give a snapshot's name as kubling snapshot ls shows it", n)
		}
		p := filepath.Join(dir, n)
		if _, err := Read(p); err != nil {
			return nil, fmt.Errorf("delete snapshot %s: %w", n, err)
		}
		paths = append(paths, p)
	}
	for _, p := range paths {
		if err := os.Remove(p); err != nil {
			return nil, err
		}
	}
	return paths, nil
}

// Prune removes all but the newest keep snapshots saved as name by node,
// and returns what it removed.
func Prune(dir, name, node string, keep int) ([]string, error) {
	if keep < 1 {
		return nil, fmt.Errorf("--snapshot-retention %d: keep at least 1", keep)
	}
	all, err := List(dir)
	if err != nil {
		return nil, err
	}
	var mine []File
	for _, f := range all {
		if f.Group == name+"-"+node {
			mine = append(mine, f)
		}
	}
	var removed []string
	for len(mine) > keep {
		if err := os.Remove(mine[0].Path); err != nil {
			return removed, err
		}
		removed = append(removed, mine[0].Path)
		mine = mine[1:]
	}
	return removed, nil
}
