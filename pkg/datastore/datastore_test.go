package datastore

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/k3s-io/kine/pkg/drivers"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kubling/kubling/pkg/datadir"
)

func TestNewRejectsUnknownScheme(t *testing.T) {
	if _, err := New(Config{Endpoint: "redis://x"}); err == nil || !strings.Contains(err.Error(), "unsupported scheme") {
		t.Fatalf("got %v", err)
	}
}

// TestExternalSQL checks what the postgres and mysql kinds decide without a
// server: kine's socket as the Backend, no Snapshotter, and the TLS files
// handed to kine.
func TestExternalSQL(t *testing.T) {
	l := datadir.New(t.TempDir())
	dir := t.TempDir()
	files := TLSFiles{CAFile: filepath.Join(dir, "ca.crt"), CertFile: filepath.Join(dir, "client.crt"), KeyFile: filepath.Join(dir, "client.key")}
	for _, f := range []string{files.CAFile, files.CertFile, files.KeyFile} {
		// New checks that they can be read; kine reads what they hold.
		if err := os.WriteFile(f, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, endpoint := range []string{"postgres://u:p@db.example:5432/kine", "mysql://u:p@tcp(db.example:3306)/kine"} {
		store, err := New(Config{Layout: l, Endpoint: endpoint, TLS: files})
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := store.(Snapshotter); ok {
			t.Errorf("%s: is a Snapshotter", endpoint)
		}
		if got, want := store.Backend().Endpoints, []string{"unix://" + l.KineSocket()}; !slices.Equal(got, want) {
			t.Errorf("%s: Backend().Endpoints = %v, want %v", endpoint, got, want)
		}
		s, ok := store.(*sqlStore)
		if !ok {
			t.Fatalf("%s: got %T", endpoint, store)
		}
		cfg := s.driverConfig(s.dsn)
		if cfg.Endpoint != endpoint {
			t.Errorf("kine endpoint = %q, want %q", cfg.Endpoint, endpoint)
		}
		if tls := cfg.BackendTLSConfig; tls.CAFile != files.CAFile || tls.CertFile != files.CertFile || tls.KeyFile != files.KeyFile {
			t.Errorf("%s: kine BackendTLSConfig = %+v, want %+v", endpoint, tls, files)
		}
	}
}

func TestSQLiteDSN(t *testing.T) {
	l := datadir.New(t.TempDir())
	for _, tc := range []struct{ endpoint, path, dsnPrefix string }{
		{"", l.SQLiteDB(), l.SQLiteDB() + "?"},
		{"sqlite://", l.SQLiteDB(), l.SQLiteDB() + "?"},
		{"sqlite:///srv/state.db?_journal_mode=WAL", "/srv/state.db", "/srv/state.db?_journal_mode=WAL"},
		{"sqlite://file:///srv/state.db?cache=shared", "/srv/state.db", "file:///srv/state.db?cache=shared"},
	} {
		store, err := New(Config{Layout: l, Endpoint: tc.endpoint})
		if err != nil {
			t.Fatal(err)
		}
		s := store.(*sqliteStore)
		if s.path != tc.path || !strings.HasPrefix(s.dsn, tc.dsnPrefix) {
			t.Errorf("%q: path %q, dsn %q; want %q, %q…", tc.endpoint, s.path, s.dsn, tc.path, tc.dsnPrefix)
		}
	}
}

const testKey = "/registry/test/key"

// startSQLite starts the embedded SQLite kind on l (startStore).
func startSQLite(t *testing.T, l datadir.Layout) (Datastore, *clientv3.Client, func()) {
	t.Helper()
	return startStore(t, Config{Layout: l})
}

func put(t *testing.T, c *clientv3.Client, value string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Put(ctx, testKey, value); err != nil {
		t.Fatal(err)
	}
}

func get(t *testing.T, c *clientv3.Client) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.Get(ctx, testKey)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) == 0 {
		return ""
	}
	return string(resp.Kvs[0].Value)
}

// TestSQLiteKeepsDataAcrossRestarts runs real kine on real SQLite and talks
// to it with the etcd client, as the apiserver does.
func TestSQLiteKeepsDataAcrossRestarts(t *testing.T) {
	l := datadir.New(t.TempDir())
	for round := 0; round < 2; round++ {
		_, client, stop := startSQLite(t, l)
		if round == 0 {
			put(t, client, "value")
		}
		if got := get(t, client); got != "value" {
			t.Fatalf("round %d: got %q", round, got)
		}
		stop()
	}
	if _, err := os.Stat(l.SQLiteDB()); err != nil {
		t.Fatalf("database not at %s: %v", l.SQLiteDB(), err)
	}
}

// TestSQLiteSnapshot snapshots a serving store and starts a fresh store on
// the snapshot.
func TestSQLiteSnapshot(t *testing.T) {
	l := datadir.New(t.TempDir())
	store, client, stop := startSQLite(t, l)
	put(t, client, "before")
	snap := filepath.Join(t.TempDir(), "snapshot.db")
	if err := os.WriteFile(snap, []byte("stale"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, ok := store.(Snapshotter)
	if !ok {
		t.Fatalf("%T is not a Snapshotter", store)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Snapshot(ctx, snap); err != nil {
		t.Fatal(err)
	}
	// Written after the snapshot, so not in it.
	put(t, client, "after")
	stop()
	if entries, _ := os.ReadDir(filepath.Dir(snap)); len(entries) != 1 {
		t.Errorf("snapshot folder holds %d entries, want only the snapshot", len(entries))
	}

	restored := datadir.New(t.TempDir())
	copyFile(t, snap, restored.SQLiteDB())
	_, client, _ = startSQLite(t, restored)
	if got := get(t, client); got != "before" {
		t.Fatalf("restored store: got %q, want %q", got, "before")
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(to), 0o700); err != nil {
		t.Fatal(err)
	}
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// Every scheme New accepts for kine has its driver linked, and the drivers
// kubling does not offer are not (kinedrivers.go).
func TestKineDriversLinked(t *testing.T) {
	for _, scheme := range []string{"sqlite", "postgres", "mysql"} {
		if _, ok := drivers.Get(scheme); !ok {
			t.Errorf("kine driver %q is not registered", scheme)
		}
	}
	for _, scheme := range []string{"nats", "t4"} {
		if _, ok := drivers.Get(scheme); ok {
			t.Errorf("kine driver %q is linked, though kubling does not offer it", scheme)
		}
	}
}

// No password reaches a log or an error line, wherever the endpoint puts it.
func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://kubling:s3cret@db:5432/k":                       "postgres://kubling:xxxxx@db:5432/k",
		"postgres://kubling:p@ss@word@db:5432/k":                    "postgres://kubling:xxxxx@db:5432/k",
		"postgres://db:5432/k?user=kubling&password=s3cret":         "postgres://db:5432/k?user=kubling&password=xxxxx",
		"postgres://db/k?sslmode=verify-full&sslpassword=s3cret":    "postgres://db/k?sslmode=verify-full&sslpassword=xxxxx",
		"postgres://kubling:p%zz@db/k":                              "postgres://…@db/k",
		"mysql://kubling:s3cret@tcp(db:3306)/k":                     "mysql://…@tcp(db:3306)/k",
		"mysql://kubling:p@ss@tcp(db:3306)/k":                       "mysql://…@tcp(db:3306)/k",
		"mysql://kubling@tcp(db:3306)/k?tls=true&Password=s3cret":   "mysql://…@tcp(db:3306)/k?tls=true&Password=xxxxx",
		"https://10.0.0.1:2379":                                     "https://10.0.0.1:2379",
		"sqlite:///var/lib/kubling/server/db/state.db?_journal=WAL": "sqlite:///var/lib/kubling/server/db/state.db?_journal=WAL",
	} {
		got := redact(in)
		if got != want || strings.Contains(got, "s3cret") || strings.Contains(got, "ss@") {
			t.Errorf("redact(%q) = %q, want %q", in, got, want)
		}
	}
}
