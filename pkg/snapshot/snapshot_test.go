package snapshot

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubling/kubling/pkg/datadir"
	"github.com/kubling/kubling/pkg/datastore"
)

// sqliteStore is the embedded SQLite kind on a fresh data dir, started once
// so that its database exists, then stopped: it snapshots all the same.
func sqliteStore(t *testing.T) datastore.Snapshotter {
	t.Helper()
	store, err := datastore.New(datastore.Config{Layout: datadir.New(t.TempDir())})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := store.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := store.Stop(); err != nil {
		t.Fatal(err)
	}
	return store.(datastore.Snapshotter)
}

func TestSaveListPruneDelete(t *testing.T) {
	store := sqliteStore(t)
	dir := filepath.Join(t.TempDir(), "snapshots")
	ctx := context.Background()
	start := time.Unix(1_800_000_000, 0)
	var saved []File
	for i := range 4 {
		f, err := Save(ctx, store, dir, Scheduled, "node-1", i%2 == 1, start.Add(time.Duration(i)*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		saved = append(saved, f)
	}
	other, err := Save(ctx, store, dir, "before-upgrade", "node-1", false, start)
	if err != nil {
		t.Fatal(err)
	}
	if saved[0].Name != "scheduled-node-1-1800000000" || saved[1].Name != "scheduled-node-1-1800003600.zst" {
		t.Fatalf("names %s, %s", saved[0].Name, saved[1].Name)
	}
	if saved[1].Info != (datastore.SnapshotInfo{Kind: datastore.KindSQLite, Compressed: true}) || saved[0].Info.Compressed {
		t.Fatalf("infos %+v, %+v", saved[0].Info, saved[1].Info)
	}
	if !saved[0].Created.Equal(start) || saved[0].Group != "scheduled-node-1" {
		t.Fatalf("created %v, group %q", saved[0].Created, saved[0].Group)
	}
	if _, err := Save(ctx, store, dir, Scheduled, "node-1", false, start); err == nil {
		t.Fatal("saved over an existing snapshot")
	}
	// Not snapshots: left out of ls, refused by delete.
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("hello, this is not a snapshot of anything"), 0o600); err != nil {
		t.Fatal(err)
	}

	list, err := List(dir)
	if err != nil || len(list) != 5 {
		t.Fatalf("List = %d files, %v; want 5", len(list), err)
	}
	removed, err := Prune(dir, Scheduled, "node-1", 2)
	if err != nil || len(removed) != 2 || removed[0] != saved[0].Path || removed[1] != saved[1].Path {
		t.Fatalf("Prune removed %v, %v; want the two oldest scheduled", removed, err)
	}
	if _, err := os.Stat(other.Path); err != nil {
		t.Fatalf("Prune removed a snapshot of another name: %v", err)
	}
	if _, err := Delete(dir, []string{other.Name, "notes.txt"}); err == nil || !strings.Contains(err.Error(), "notes.txt") {
		t.Fatalf("Delete of a non-snapshot: %v", err)
	}
	if _, err := os.Stat(other.Path); err != nil {
		t.Fatal("Delete removed a snapshot before refusing")
	}
	if _, err := Delete(dir, []string{"../etc"}); err == nil {
		t.Fatal("Delete took a path")
	}
	if _, err := Delete(dir, []string{other.Name}); err != nil {
		t.Fatal(err)
	}
	if list, _ := List(dir); len(list) != 2 {
		t.Fatalf("%d snapshots left, want 2", len(list))
	}
}

func TestCompressedSnapshotRestores(t *testing.T) {
	store := sqliteStore(t)
	f, err := Save(context.Background(), store, t.TempDir(), OnDemand, "n", true, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	into := datadir.New(t.TempDir())
	r, err := datastore.Restore(datastore.Config{Layout: into}, f.Path)
	if err != nil {
		t.Fatal(err)
	}
	if r.Kind != datastore.KindSQLite || r.Into != into.SQLiteDB() {
		t.Fatalf("Restore = %+v", r)
	}
}

func TestCheckName(t *testing.T) {
	for _, ok := range []string{"on-demand", "before-upgrade.1", "a"} {
		if err := CheckName(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "Upper", "a/b", "-x", "x-", strings.Repeat("a", 65), "../x"} {
		if err := CheckName(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// A snapshot folder others may write to is refused (a snapshot swapped in
// would be restored); what a crashed compressed save left is removed once
// it is an hour old, and nothing else.
func TestCheckDir(t *testing.T) {
	now := time.Now()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := CheckDir(dir, now); err == nil || !strings.Contains(err.Error(), "chmod go-w") || strings.Contains(err.Error(), "\n") {
		t.Errorf("a world-writable folder: %v", err)
	}
	if _, err := Save(context.Background(), sqliteStore(t), dir, "manual", "n1", true, now); err == nil {
		t.Error("Save wrote into a world-writable folder")
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	old, fresh := filepath.Join(dir, ".manual-n1-1.uncompressed"), filepath.Join(dir, ".manual-n1-2.zst.tmp123")
	mine := filepath.Join(dir, ".notes")
	for _, p := range []string{old, fresh, mine} {
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	twoHours := now.Add(-2 * time.Hour)
	for _, p := range []string{old, mine} {
		if err := os.Chtimes(p, twoHours, twoHours); err != nil {
			t.Fatal(err)
		}
	}
	if err := CheckDir(dir, now); err != nil {
		t.Fatal(err)
	}
	for p, kept := range map[string]bool{old: false, fresh: true, mine: true} {
		if _, err := os.Stat(p); (err == nil) != kept {
			t.Errorf("%s: kept %v, want %v", filepath.Base(p), err == nil, kept)
		}
	}
	if err := CheckDir(filepath.Join(dir, "not-yet"), now); err != nil {
		t.Errorf("a folder Save will make: %v", err)
	}
}
