package datastore

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	clientv3 "go.etcd.io/etcd/client/v3"
	"k8s.io/klog/v2"

	"github.com/k3s-io/kine/pkg/drivers/sqlite"

	"github.com/kubling/kubling/pkg/fileutil"
)

// migratedSuffix marks a SQLite database whose keys are all in etcd.
const migratedSuffix = ".migrated"

// migrateSQLite copies every key of the SQLite database at db into etcd
// (the first start with --cluster-init of a server that ran on SQLite),
// then renames the database and its WAL files with migratedSuffix, so the
// copy is made once and the old data is kept, not deleted.
//
// It runs before the apiserver starts, so nothing writes to either side
// meanwhile, and a copy that stops part-way is simply made again on the next
// start (every put is of the same key and value). Keys that carry an etcd
// lease (Events, the apiservers' endpoint leases) are left out: they are
// short-lived by design and would never expire without their lease.
func migrateSQLite(ctx context.Context, log klog.Logger, db, socketDir string, to *clientv3.Client) error {
	k := &kineServer{driver: "sqlite", socket: filepath.Join(socketDir, "kine-migrate.sock")}
	k.backend = Backend{Endpoints: []string{"unix://" + k.socket}}
	if err := k.start(ctx, "sqlite://"+db+"?"+sqlite.DefaultParams); err != nil {
		return err
	}
	defer k.Stop()
	from, err := Client(ctx, k.backend)
	if err != nil {
		return err
	}
	defer from.Close()

	const page = 500
	key, end := "/", clientv3.GetPrefixRangeEnd("/")
	var copied, skipped int
	for {
		resp, err := from.Get(ctx, key, clientv3.WithRange(end), clientv3.WithLimit(page))
		if err != nil {
			return fmt.Errorf("read %s: %w", db, err)
		}
		for _, kv := range resp.Kvs {
			if kv.Lease != 0 {
				skipped++
				continue
			}
			if _, err := to.Put(ctx, string(kv.Key), string(kv.Value)); err != nil {
				return fmt.Errorf("write %s: %w", kv.Key, err)
			}
			copied++
		}
		if !resp.More || len(resp.Kvs) == 0 {
			break
		}
		key = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
	if err := k.Stop(); err != nil {
		return err
	}
	for _, suffix := range []string{"-wal", "-shm", ""} {
		// The database itself last: while it is there, the copy is
		// made again.
		if err := os.Rename(db+suffix, migratedName(db)+suffix); err != nil && !os.IsNotExist(err) {
			return err
		}
	}
	if err := fileutil.Sync(filepath.Dir(db)); err != nil {
		return err
	}
	log.Info("Moved the SQLite datastore into embedded etcd", "keys", copied, "shortLivedLeftOut", skipped, "from", db, "keptAs", migratedName(db))
	return nil
}

// migratedName is where migrateSQLite keeps the moved database.
func migratedName(db string) string { return db + migratedSuffix }
