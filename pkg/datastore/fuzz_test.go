package datastore

import (
	"crypto/sha256"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
)

// FuzzSnapshotReader: whatever file a user names as a snapshot (or a
// stolen backup store hands back), reading its kind, verifying it and
// reading kubling's key from it return errors, never panic. withDigest
// appends the sha256 etcd would, so that the etcd path gets past the
// digest to bbolt.
func FuzzSnapshotReader(f *testing.F) {
	page := make([]byte, 4096)
	binary.LittleEndian.PutUint32(page[16:], bboltMagic)
	for _, seed := range [][]byte{nil, []byte("SQLite format 3\x00" + string(make([]byte, 100))), page, append([]byte{0x28, 0xb5, 0x2f, 0xfd}, page...)} {
		f.Add(seed, true)
		f.Add(seed, false)
	}
	f.Fuzz(func(t *testing.T, data []byte, withDigest bool) {
		path := filepath.Join(t.TempDir(), "snap")
		if withDigest {
			for len(data)%512 != 0 {
				data = append(data, 0)
			}
			sum := sha256.Sum256(data)
			data = append(data, sum[:]...)
		}
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		info, err := ReadSnapshotInfo(path)
		if err != nil || info.Compressed {
			return
		}
		if err := VerifySnapshot(path, info.Kind); err != nil {
			return
		}
		switch info.Kind {
		case KindEtcd:
			_, _, _ = readEtcdDB(path, "/kubling/bootstrap")
		case KindSQLite:
			_, _, _ = readKineSQLite(path, "/kubling/bootstrap")
		}
	})
}
