package datastore

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

func TestNewRejectsUnknownScheme(t *testing.T) {
	if _, err := New(Config{Endpoint: "redis://x"}); err == nil || !strings.Contains(err.Error(), "unsupported scheme") {
		t.Fatalf("got %v", err)
	}
}

// TestSQLiteKeepsDataAcrossRestarts runs real kine on real SQLite and talks
// to it with the etcd client, as the apiserver does.
func TestSQLiteKeepsDataAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	put := func(ctx context.Context, c *clientv3.Client) {
		if _, err := c.Put(ctx, "/registry/test/key", "value"); err != nil {
			t.Fatal(err)
		}
	}
	get := func(ctx context.Context, c *clientv3.Client) string {
		resp, err := c.Get(ctx, "/registry/test/key")
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Kvs) == 0 {
			return ""
		}
		return string(resp.Kvs[0].Value)
	}
	for round := 0; round < 2; round++ {
		store, err := New(Config{DataDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := store.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if err := store.Ready(ctx); err != nil {
			t.Fatal(err)
		}
		client, err := clientv3.New(clientv3.Config{Endpoints: store.Backend().Endpoints, DialTimeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if round == 0 {
			put(ctx, client)
		}
		if got := get(ctx, client); got != "value" {
			t.Fatalf("round %d: got %q", round, got)
		}
		client.Close()
		cancel()
		if err := store.Stop(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(SQLitePath(dir)); err != nil {
		t.Fatalf("database not at %s: %v", SQLitePath(dir), err)
	}
}
