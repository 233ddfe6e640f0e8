package datastore

import (
	"bytes"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"
	"go.etcd.io/etcd/etcdutl/v3/snapshot"
	"go.uber.org/zap"

	"github.com/kubling/kubling/pkg/fileutil"
)

// SnapshotInfo is what a snapshot file holds, read from its content.
type SnapshotInfo struct {
	// Kind is KindSQLite (a SQLite database) or KindEtcd (an etcd
	// snapshot: a bbolt database with a sha256 trailer).
	Kind Kind
	// Compressed says the file is zstd-compressed.
	Compressed bool
}

// File signatures.
var (
	sqliteMagic = []byte("SQLite format 3\x00")
	zstdMagic   = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// bboltMagic is at offset 16 of a bbolt file: its first meta page, after the
// page header.
const bboltMagic = 0xED0CDAED

// ReadSnapshotInfo names the kind of a snapshot file from its first bytes,
// decompressing them if it is compressed. It does not check the whole file
// (VerifySnapshot does).
func ReadSnapshotInfo(path string) (SnapshotInfo, error) {
	info, err := snapshotInfo(path)
	if err != nil {
		return info, fmt.Errorf("%s: %w", path, err)
	}
	return info, nil
}

func snapshotInfo(path string) (SnapshotInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return SnapshotInfo{}, err
	}
	defer f.Close()
	var info SnapshotInfo
	var r io.Reader = f
	head := make([]byte, 4)
	if _, err := io.ReadFull(f, head); err == nil && bytes.Equal(head, zstdMagic) {
		info.Compressed = true
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return info, err
		}
		zr, err := zstd.NewReader(f)
		if err != nil {
			return info, err
		}
		defer zr.Close()
		r = zr
	} else if _, err := f.Seek(0, io.SeekStart); err != nil {
		return info, err
	}
	head = make([]byte, 32)
	if _, err := io.ReadFull(r, head); err != nil {
		return info, errors.New("not a snapshot (too short to be one)")
	}
	switch {
	case bytes.HasPrefix(head, sqliteMagic):
		info.Kind = KindSQLite
	case binary.LittleEndian.Uint32(head[16:20]) == bboltMagic:
		info.Kind = KindEtcd
	default:
		return info, errors.New("not a snapshot (neither a SQLite database nor an etcd snapshot)")
	}
	return info, nil
}

// VerifySnapshot checks a whole, uncompressed snapshot file: a SQLite
// database must pass SQLite's integrity check and hold kine's table; an
// etcd snapshot must match the sha256 digest etcd appends to it.
func VerifySnapshot(path string, kind Kind) error {
	if err := verifySnapshot(path, kind); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// verifySnapshot is VerifySnapshot with errors that do not name the file.
func verifySnapshot(path string, kind Kind) error {
	switch kind {
	case KindSQLite:
		return verifySQLite(path)
	case KindEtcd:
		return verifyEtcdSnapshot(path)
	}
	return fmt.Errorf("no snapshot of kind %q", kind)
}

func verifySQLite(path string) error {
	// Read-only and immutable: checking must not write a journal or
	// change the file.
	db := sql.OpenDB(&sqliteConnector{dsn: "file:" + path + "?mode=ro&immutable=1"})
	defer db.Close()
	var result string
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&result); err != nil {
		return fmt.Errorf("broken SQLite snapshot: %w", err)
	}
	if result != "ok" {
		return fmt.Errorf("broken SQLite snapshot: integrity check: %s", strings.SplitN(result, "\n", 2)[0])
	}
	var rows int64
	if err := db.QueryRow("SELECT COUNT(*) FROM kine").Scan(&rows); err != nil {
		return fmt.Errorf("a SQLite database, but not kubling's datastore: %w", err)
	}
	return nil
}

func verifyEtcdSnapshot(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	// etcd appends a sha256 of the database; the database is whole pages.
	const sum = sha256.Size
	if st.Size() <= sum || (st.Size()-sum)%512 != 0 {
		return fmt.Errorf("broken etcd snapshot: %d bytes is not a database and its digest (truncated?)", st.Size())
	}
	h := sha256.New()
	if _, err := io.CopyN(h, f, st.Size()-sum); err != nil {
		return err
	}
	want := make([]byte, sum)
	if _, err := io.ReadFull(f, want); err != nil {
		return err
	}
	if !bytes.Equal(h.Sum(nil), want) {
		return errors.New("broken etcd snapshot: its sha256 digest does not match its content")
	}
	return nil
}

// Restored says what Restore did.
type Restored struct {
	Kind Kind
	// Into is the restored database or etcd data dir.
	Into string
	// Kept are the former data, moved aside (never deleted).
	Kept []string
	// from are Kept's original paths.
	from []string
}

// Undo takes a restore back: the restored data goes and the former data
// returns to its place. For a restore whose next step failed.
func (r Restored) Undo() error {
	if r.Into != "" {
		if err := os.RemoveAll(r.Into); err != nil {
			return err
		}
	}
	for i, kept := range r.Kept {
		if err := os.Rename(kept, r.from[i]); err != nil {
			return err
		}
	}
	return nil
}

// Restore makes the snapshot at path the data dir's datastore
// (--cluster-reset --cluster-reset-restore-path), for the next start to
// serve. It checks the whole snapshot before it touches anything; then it
// moves the datastore there was aside (<name>-old-<unix time>) and puts the
// snapshot in its place. The server must not be running.
func Restore(c Config, path string) (Restored, error) {
	if c.Endpoint != "" {
		return Restored{}, errors.New("--cluster-reset-restore-path restores the embedded datastores; an external one is restored with its own tools")
	}
	dbDir := filepath.Dir(c.Layout.SQLiteDB())
	if err := os.MkdirAll(dbDir, 0o700); err != nil {
		return Restored{}, err
	}
	// The user's file is read once, into root's folder beside the
	// datastore (the same filesystem): what is checked is what is
	// restored, whatever happens to the user's path meanwhile.
	copied, err := copyToTemp(path, dbDir)
	if err != nil {
		return Restored{}, err
	}
	defer os.Remove(copied)
	info, err := snapshotInfo(copied)
	if err != nil {
		return Restored{}, fmt.Errorf("%s: %w", path, err)
	}
	plain := copied
	if info.Compressed {
		tmp, err := decompress(copied, dbDir)
		if err != nil {
			return Restored{}, fmt.Errorf("%s: %w", path, err)
		}
		defer os.Remove(tmp)
		plain = tmp
	}
	if err := verifySnapshot(plain, info.Kind); err != nil {
		if info.Compressed {
			path += " (decompressed)"
		}
		return Restored{}, fmt.Errorf("%s: %w", path, err)
	}

	r := Restored{Kind: info.Kind}
	stamp := fmt.Sprintf("-old-%d", time.Now().Unix())
	keep := func(p string) error {
		if _, err := os.Lstat(p); errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err := os.Rename(p, p+stamp); err != nil {
			return fmt.Errorf("move the former datastore aside: %w", err)
		}
		r.Kept, r.from = append(r.Kept, p+stamp), append(r.from, p)
		return nil
	}
	switch info.Kind {
	case KindSQLite:
		// The checked copy, in place with the database's WAL files and an
		// etcd member moved aside (a data dir with etcd data would start
		// etcd).
		db := c.Layout.SQLiteDB()
		for _, p := range []string{db + "-wal", db + "-shm", db, c.Layout.EtcdDir(), resetMarker(c.Layout.EtcdDir())} {
			if err := keep(p); err != nil {
				return r, err
			}
		}
		if err := os.Rename(plain, db); err != nil {
			return r, err
		}
		r.Into = db
	case KindEtcd:
		if c.Etcd.Name == "" || c.Etcd.IP == "" {
			return r, errors.New("restore etcd snapshot: this member's name and address are needed")
		}
		// Restored into a fresh folder, then renamed into place; a SQLite
		// database left beside it would be moved into etcd on start, so
		// it goes aside too.
		tmp := c.Layout.EtcdDir() + ".restoring"
		if err := os.RemoveAll(tmp); err != nil {
			return r, err
		}
		store := newEtcd(c)
		err := snapshot.NewV3(zap.NewNop()).Restore(snapshot.RestoreConfig{
			SnapshotPath:        plain,
			Name:                c.Etcd.Name,
			OutputDataDir:       tmp,
			PeerURLs:            []string{store.PeerURL()},
			InitialCluster:      c.Etcd.Name + "=" + store.PeerURL(),
			InitialClusterToken: "etcd-cluster",
			// Revisions go forward from the snapshot's and older ones read
			// as compacted, so watchers (kubelets, controllers) that saw
			// later revisions list again rather than wait for them.
			RevisionBump:  1_000_000_000,
			MarkCompacted: true,
		})
		if err != nil {
			os.RemoveAll(tmp)
			return r, fmt.Errorf("restore etcd snapshot %s: %w", path, err)
		}
		db := c.Layout.SQLiteDB()
		for _, p := range []string{c.Layout.EtcdDir(), resetMarker(c.Layout.EtcdDir()), db + "-wal", db + "-shm", db} {
			if err := keep(p); err != nil {
				return r, err
			}
		}
		if err := os.Rename(tmp, c.Layout.EtcdDir()); err != nil {
			return r, err
		}
		r.Into = c.Layout.EtcdDir()
	}
	return r, fileutil.Sync(dbDir)
}

// decompress writes the zstd file at path to a temporary file in dir.
func decompress(path, dir string) (string, error) {
	in, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer in.Close()
	zr, err := zstd.NewReader(in)
	if err != nil {
		return "", err
	}
	defer zr.Close()
	return writeTemp(dir, zr, path)
}

// copyToTemp copies path to a temporary file in dir.
func copyToTemp(path, dir string) (string, error) {
	in, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer in.Close()
	return writeTemp(dir, in, path)
}

func writeTemp(dir string, r io.Reader, from string) (string, error) {
	out, err := os.CreateTemp(dir, ".restore-*")
	if err != nil {
		return "", err
	}
	if _, err := io.Copy(out, r); err != nil {
		out.Close()
		os.Remove(out.Name())
		return "", fmt.Errorf("read %s: %w", from, err)
	}
	if err := out.Sync(); err != nil {
		out.Close()
		os.Remove(out.Name())
		return "", err
	}
	return out.Name(), out.Close()
}
