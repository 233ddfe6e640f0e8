package datastore

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"
)

// Keys outside the apiserver's /registry prefix, for kubling's own use (the
// sealed bootstrap data): read and written through the etcd API the
// datastore serves, or read from an embedded datastore's files while it is
// stopped.

// clientConfig is the configuration of an etcd client of b: over TLS with
// b's files when it has any or its endpoints are https, else plain (kine's
// unix socket). Every etcd client kubling makes starts from it.
func clientConfig(b Backend) (clientv3.Config, error) {
	cfg := clientv3.Config{Endpoints: b.Endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()}
	if b.CAFile != "" || b.CertFile != "" || (len(b.Endpoints) > 0 && strings.HasPrefix(b.Endpoints[0], "https://")) {
		tlsConfig, err := etcdClientTLS(b)
		if err != nil {
			return cfg, err
		}
		cfg.TLS = tlsConfig
	}
	return cfg, nil
}

// Client is an etcd client of the running datastore at b.
func Client(ctx context.Context, b Backend) (*clientv3.Client, error) {
	cfg, err := clientConfig(b)
	if err != nil {
		return nil, err
	}
	cfg.Context = ctx
	client, err := clientv3.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("datastore client: %w", err)
	}
	return client, nil
}

// KV is one client of the running datastore for kubling's own keys, kept
// open by what reads them again and again.
type KV struct {
	client *clientv3.Client
}

// OpenKV opens a KV on the running datastore at b; Close it.
func OpenKV(ctx context.Context, b Backend) (*KV, error) {
	client, err := Client(ctx, b)
	if err != nil {
		return nil, err
	}
	return &KV{client: client}, nil
}

func (k *KV) Close() error { return k.client.Close() }

// Get reads key; revision is the revision of its last write, 0 when it is
// not there.
func (k *KV) Get(ctx context.Context, key string) (value []byte, revision int64, err error) {
	resp, err := k.client.Get(ctx, key)
	if err != nil {
		return nil, 0, fmt.Errorf("read %s from the datastore: %w", key, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, 0, nil
	}
	return resp.Kvs[0].Value, resp.Kvs[0].ModRevision, nil
}

// Swap writes key only if its last write is still revision (0: only if it
// is absent): a compare-and-swap, in the two transaction forms kine serves
// besides etcd (create, and update with a read on failure). swapped is false
// when someone wrote it meanwhile.
func (k *KV) Swap(ctx context.Context, key string, value []byte, revision int64) (swapped bool, err error) {
	txn := k.client.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", revision)).Then(clientv3.OpPut(key, string(value)))
	if revision != 0 {
		txn = txn.Else(clientv3.OpGet(key))
	}
	resp, err := txn.Commit()
	if err != nil {
		return false, fmt.Errorf("write %s to the datastore: %w", key, err)
	}
	return resp.Succeeded, nil
}

// Entry is one key's value and the revision of its last write.
type Entry struct {
	Key      string
	Value    []byte
	Revision int64
}

// List reads the keys under prefix, in key order.
func (k *KV) List(ctx context.Context, prefix string) ([]Entry, error) {
	resp, err := k.client.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("read %s* from the datastore: %w", prefix, err)
	}
	out := make([]Entry, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		out = append(out, Entry{Key: string(kv.Key), Value: kv.Value, Revision: kv.ModRevision})
	}
	return out, nil
}

// Delete removes key if its last write is still revision, in the
// transaction form kine serves for deletes (it has no plain one).
func (k *KV) Delete(ctx context.Context, key string, revision int64) error {
	_, err := k.client.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", revision)).
		Then(clientv3.OpDelete(key)).Else(clientv3.OpGet(key)).Commit()
	if err != nil {
		return fmt.Errorf("delete %s from the datastore: %w", key, err)
	}
	return nil
}

// Get reads key from the running datastore; found is false when it is not
// there.
func Get(ctx context.Context, b Backend, key string) (value []byte, found bool, err error) {
	kv, err := OpenKV(ctx, b)
	if err != nil {
		return nil, false, err
	}
	defer kv.Close()
	value, revision, err := kv.Get(ctx, key)
	return value, revision != 0, err
}

// ReadStopped reads key from the data dir's embedded datastore while it is
// not running (after a restore): kine's table in the SQLite database, or
// the latest revision in the etcd member's bbolt database.
func ReadStopped(c Config, key string) (value []byte, found bool, err error) {
	switch KindOf(Config{Layout: c.Layout}) {
	case KindEtcd:
		return readEtcdDB(filepath.Join(c.Layout.EtcdDir(), "member", "snap", "db"), key)
	case KindSQLite:
		return readKineSQLite(c.Layout.SQLiteDB(), key)
	}
	return nil, false, errors.New("the data dir holds no embedded datastore")
}

func readKineSQLite(path, key string) ([]byte, bool, error) {
	db := sql.OpenDB(&sqliteConnector{dsn: "file:" + path + "?mode=ro"})
	defer db.Close()
	var value []byte
	var deleted int
	err := db.QueryRow("SELECT value, deleted FROM kine WHERE name = ? ORDER BY id DESC LIMIT 1", key).Scan(&value, &deleted)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && deleted != 0) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read %s from %s: %w", key, path, err)
	}
	return value, true, nil
}

// readEtcdDB finds key's latest revision in etcd's "key" bucket, whose
// entries are keyed by revision, in order (a trailing 't' marks a
// deletion).
func readEtcdDB(path, key string) ([]byte, bool, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		return nil, false, fmt.Errorf("open %s: %w", path, err)
	}
	defer db.Close()
	var value []byte
	var found bool
	err = db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("key"))
		if b == nil {
			return fmt.Errorf("%s: not an etcd database", path)
		}
		return b.ForEach(func(rev, raw []byte) error {
			var kv mvccpb.KeyValue
			if err := proto.Unmarshal(raw, &kv); err != nil {
				return err
			}
			if !bytes.Equal(kv.Key, []byte(key)) {
				return nil
			}
			// Entries come in revision order: the last one counts. A
			// deletion holds only the key.
			found = !(len(rev) > 17 && rev[17] == 't')
			value = append([]byte(nil), kv.Value...)
			return nil
		})
	})
	if err != nil {
		return nil, false, err
	}
	if !found {
		return nil, false, nil
	}
	return value, true, nil
}
