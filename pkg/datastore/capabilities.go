package datastore

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
)

// Optional capabilities: what only some kinds of datastore can do. A kind
// implements those it can honour, and callers ask for one by type assertion:
//
//	if s, ok := store.(Snapshotter); ok {
//		err = s.Snapshot(ctx, path)
//	}

// Snapshotter is a datastore that can copy its own data to a file.
type Snapshotter interface {
	// Snapshot writes a consistent copy of the datastore's data to path,
	// which the same kind can later use as its data (for SQLite: a database
	// file). It may be called while the datastore serves. The write is
	// atomic: path holds either what it held before or the whole snapshot,
	// even after a crash; an existing file at path is replaced.
	Snapshot(ctx context.Context, path string) error
}

// replaceFile makes path's new content atomically: write fills an empty
// temporary file in path's folder, which is then synced, renamed onto path,
// and the folder synced so that the rename lasts. The temporary file is
// removed if anything fails.
func replaceFile(path string, write func(tmp string) error) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("create temporary file: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			os.Remove(tmp)
		}
	}()
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	if err := write(tmp); err != nil {
		return err
	}
	if err := syncPath(tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename %s to %s: %w", tmp, path, err)
	}
	return syncPath(dir)
}

// syncPath flushes a file or folder to stable storage.
func syncPath(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open %s for sync: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", path, err)
	}
	return nil
}
