// Package fileutil has the file operations kubling needs to never leave a
// half-written file behind.
package fileutil

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// WriteAtomic writes data to path with mode through Replace, so readers and
// crashes never see a partial file.
func WriteAtomic(path string, data []byte, mode os.FileMode) error {
	err := Replace(path, func(tmp string) error {
		if err := os.WriteFile(tmp, data, mode); err != nil {
			return err
		}
		return os.Chmod(tmp, mode) // WriteFile keeps the temporary file's 0600
	})
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// Replace gives path new content atomically: fill writes it into an empty
// temporary file in path's folder (named tmp), which is then synced, renamed
// onto path, and the folder synced so that the rename survives a power cut.
// path holds either its old content or the whole new one; the temporary
// file is removed if anything fails.
func Replace(path string, fill func(tmp string) error) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			os.Remove(tmp)
		}
	}()
	if err := f.Close(); err != nil {
		return err
	}
	if err := fill(tmp); err != nil {
		return err
	}
	if err := Sync(tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	// Some filesystems (FUSE, 9p, CIFS) cannot sync a folder; the rename
	// has happened all the same.
	if err := Sync(dir); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOTSUP) {
		return err
	}
	return nil
}

// Sync flushes a file or folder to stable storage.
func Sync(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync %s: %w", path, err)
	}
	return f.Close()
}
