package server

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"k8s.io/klog/v2"

	"github.com/kubling/kubling/pkg/component"
	"github.com/kubling/kubling/pkg/config"
	"github.com/kubling/kubling/pkg/datadir"
	"github.com/kubling/kubling/pkg/datastore"
	"github.com/kubling/kubling/pkg/hostcheck"
	"github.com/kubling/kubling/pkg/server/bootstrapdata"
	"github.com/kubling/kubling/pkg/server/pki"
	"github.com/kubling/kubling/pkg/snapshot"
	"github.com/kubling/kubling/pkg/token"
)

// datastoreConfig is the datastore the flags ask for. This server's etcd
// member, should it run one, is named after its node and reached at its
// node address.
func datastoreConfig(c *config.Server, l datadir.Layout, log klog.Logger) datastore.Config {
	d := c.Datastore
	return datastore.Config{
		Layout:      l,
		Endpoint:    d.Endpoint,
		TLS:         datastore.TLSFiles{CAFile: d.CAFile, CertFile: d.CertFile, KeyFile: d.KeyFile},
		ClusterInit: d.ClusterInit || d.JoinURL != "", // a joining server runs an etcd member
		Etcd:        datastore.EtcdMember{Name: c.NodeName, IP: serverAddress(c), TLS: EtcdTLS(l), Reset: d.ClusterReset},
		Log:         log,
	}
}

// serverAddress is where other machines reach this server (its etcd
// member, the join URL it prints): config.NodeAddress, else, on a host
// with no route out, loopback — a lone server still starts there.
func serverAddress(c *config.Server) string {
	if addr, err := config.NodeAddress(c.NodeIP, c.AdvertiseAddress); err == nil {
		return addr.String()
	}
	return "127.0.0.1"
}

// EtcdTLS are embedded etcd's certificate files in the server's TLS folder.
func EtcdTLS(l datadir.Layout) datastore.EtcdTLS {
	p := pki.PKI{Dir: l.ServerTLS()}
	return datastore.EtcdTLS{
		CAFile:     p.Cert(pki.EtcdCA),
		ServerCert: p.Cert(pki.EtcdServer), ServerKey: p.Key(pki.EtcdServer),
		PeerCert: p.Cert(pki.EtcdPeer), PeerKey: p.Key(pki.EtcdPeer),
		ClientCert: p.Cert(pki.EtcdClient), ClientKey: p.Key(pki.EtcdClient),
	}
}

// restoreSnapshot is --cluster-reset --cluster-reset-restore-path: it
// puts the snapshot in place of the data dir's datastore, with the server
// stopped, and returns; the next plain start serves it.
func restoreSnapshot(c datastore.Config, path string, givenToken *token.Token, log klog.Logger) error {
	// A file that is no snapshot is refused before the data dir is made.
	if _, err := datastore.ReadSnapshotInfo(path); err != nil {
		return fmt.Errorf("--cluster-reset-restore-path: %w", err)
	}
	if err := hostcheck.RequireRoot("server"); err != nil {
		return err
	}
	lock, err := hostcheck.LockDir(c.Layout.Root)
	if err != nil {
		return err
	}
	defer lock.Close()
	// On a new machine the cluster's keys come from the snapshot, opened
	// with the token.
	_, err = os.Stat(pki.PKI{Dir: c.Layout.ServerTLS()}.Cert(pki.ServerCA))
	newMachine := errors.Is(err, os.ErrNotExist)
	if newMachine && givenToken == nil {
		return fmt.Errorf("--cluster-reset-restore-path: %s holds no cluster certificates; give the cluster's --token to take them from the snapshot", c.Layout.ServerTLS())
	}
	r, err := datastore.Restore(c, path)
	if err != nil {
		return fmt.Errorf("--cluster-reset-restore-path: %w", err)
	}
	if newMachine {
		n, err := takeBootstrapData(c, givenToken)
		if err != nil {
			if undo := r.Undo(); undo != nil {
				err = errors.Join(err, fmt.Errorf("undo the restore: %w", undo))
			}
			return fmt.Errorf("--cluster-reset-restore-path: %w", err)
		}
		log.Info("Took the cluster keys from the snapshot", "files", n, "dir", c.Layout.ServerTLS())
	}
	log.Info("Restored the snapshot; start kubling server without --cluster-reset to serve it", "snapshot", path, "kind", r.Kind, "into", r.Into, "formerDataKeptAs", r.Kept)
	return nil
}

// OpenSnapshotter is the data dir's embedded datastore, for `kubling
// snapshot save`: SQLite (read by its own connection) or embedded etcd
// (reached on loopback with the server's etcd client certificate).
func OpenSnapshotter(l datadir.Layout) (datastore.Snapshotter, datastore.Kind, error) {
	c := datastore.Config{Layout: l, Etcd: datastore.EtcdMember{TLS: EtcdTLS(l)}}
	store, err := datastore.New(c)
	if err != nil {
		return nil, "", err
	}
	s, ok := store.(datastore.Snapshotter)
	if !ok {
		return nil, "", fmt.Errorf("the %s datastore has no snapshots", datastore.KindOf(c))
	}
	return s, datastore.KindOf(c), nil
}

// EtcdBackend is the data dir's embedded etcd, reached on loopback with the
// server's etcd client certificate, for `kubling etcd member`.
func EtcdBackend(l datadir.Layout) (datastore.Backend, error) {
	c := datastore.Config{Layout: l, Etcd: datastore.EtcdMember{TLS: EtcdTLS(l)}}
	if datastore.KindOf(c) != datastore.KindEtcd {
		return datastore.Backend{}, fmt.Errorf("%s holds no embedded etcd (is it a server's data dir, started with --cluster-init or --server? see --data-dir)", l.Root)
	}
	store, err := datastore.New(c)
	if err != nil {
		return datastore.Backend{}, err
	}
	return store.Backend(), nil
}

// snapshotSchedule takes a snapshot of the embedded datastore at the times
// of --snapshot-schedule-cron and keeps the newest --snapshot-retention.
func snapshotSchedule(c *config.Server, l datadir.Layout, store datastore.Snapshotter, log klog.Logger) (component.Component, error) {
	sched, err := config.ParseSchedule(c.Snapshots.Schedule)
	if err != nil {
		return nil, err
	}
	dir := snapshotDir(c.Snapshots.Dir, l)
	if err := snapshot.CheckDir(dir, time.Now()); err != nil {
		return nil, err
	}
	take := func(ctx context.Context) error {
		f, err := snapshot.Save(ctx, store, dir, snapshot.Scheduled, c.NodeName, c.Snapshots.Compress, time.Now())
		if err != nil {
			return err
		}
		removed, err := snapshot.Prune(dir, snapshot.Scheduled, c.NodeName, c.Snapshots.Retention)
		log.Info("Saved a scheduled snapshot", "path", f.Path, "size", f.Size, "pruned", removed)
		return err
	}
	return component.NewScheduled("snapshot-schedule", sched.Next, take,
		func(err error) { log.Error(err, "Scheduled snapshot failed; trying again at the next scheduled time") }), nil
}

// snapshotDir is --snapshot-dir, or the data dir's snapshot folder.
func snapshotDir(flag string, l datadir.Layout) string {
	if flag != "" {
		return flag
	}
	return l.Snapshots()
}

// newPaths are those of the server's files and folders a start writes that
// are not there yet: what a first start that is refused takes back.
func newPaths(l datadir.Layout) []string {
	var out []string
	for _, p := range []string{l.ServerDir(), l.ServerTLS(), filepath.Dir(l.AdminKubeconfig()), l.Token(), filepath.Dir(l.AuthenticationConfig()), filepath.Dir(l.AuditLog()), l.KineSocket()} {
		if _, err := os.Lstat(p); errors.Is(err, os.ErrNotExist) {
			out = append(out, p)
		}
	}
	return out
}

// takeBootstrapData gives a data dir without certificate authorities (a
// new machine) the cluster's keys from a restored datastore, opened with
// --token, and writes the token file.
func takeBootstrapData(c datastore.Config, given *token.Token) (int, error) {
	blob, found, err := datastore.ReadStopped(c, bootstrapdata.Key)
	if err != nil {
		return 0, err
	}
	if !found {
		return 0, fmt.Errorf("the snapshot holds no cluster keys; copy %s from the machine it was taken on", c.Layout.ServerTLS())
	}
	return bootstrapdata.Install(c.Layout, blob, *given)
}

// adoptBootstrapData gives a new server on an external datastore that
// already serves a cluster that cluster's keys, opened with --token; a
// data dir with certificate authorities, or a datastore without keys (the
// first server), is left as it is.
func adoptBootstrapData(ctx context.Context, b datastore.Backend, l datadir.Layout, given *token.Token, log klog.Logger) error {
	if _, err := os.Stat(pki.PKI{Dir: l.ServerTLS()}.Cert(pki.ServerCA)); !errors.Is(err, os.ErrNotExist) {
		return nil
	}
	blob, found, err := datastore.Get(ctx, b, bootstrapdata.Key)
	if err != nil || !found {
		return err
	}
	if given == nil {
		return fmt.Errorf("%w: it serves a cluster already; give that cluster's --token (its first server's <data-dir>/server/token) to join it", bootstrapdata.ErrOtherCluster)
	}
	n, err := bootstrapdata.Install(l, blob, *given)
	if errors.Is(err, bootstrapdata.ErrWrongToken) {
		return fmt.Errorf("%w: %w", bootstrapdata.ErrOtherCluster, err)
	} else if err != nil {
		return err
	}
	log.Info("Took the cluster keys from the datastore, opened with the token", "files", n, "dir", l.ServerTLS())
	return nil
}
