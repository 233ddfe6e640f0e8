package server

import (
	"context"
	"fmt"
	"net"
	"time"

	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/klog/v2"

	"github.com/kubling/kubling/pkg/component"
	"github.com/kubling/kubling/pkg/config"
	"github.com/kubling/kubling/pkg/datadir"
	"github.com/kubling/kubling/pkg/datastore"
	"github.com/kubling/kubling/pkg/hostcheck"
	"github.com/kubling/kubling/pkg/server/pki"
	"github.com/kubling/kubling/pkg/snapshot"
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
		ClusterInit: d.ClusterInit,
		Etcd:        datastore.EtcdMember{Name: c.NodeName, IP: memberIP(c), TLS: EtcdTLS(l), Reset: d.ClusterReset},
		Log:         log,
	}
}

// memberIP is the address other servers reach this one's etcd at: the node
// IP, else the advertised address, else the host's primary address.
func memberIP(c *config.Server) string {
	for _, ip := range []string{c.NodeIP, c.AdvertiseAddress} {
		if ip != "" {
			return ip
		}
	}
	if ip, err := utilnet.ChooseHostInterface(); err == nil {
		return ip.String()
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

// datastorePorts are the ports the datastore will listen on, for the
// preflight check: embedded etcd's.
func datastorePorts(c datastore.Config) []hostcheck.Port {
	if datastore.KindOf(c) != datastore.KindEtcd {
		return nil
	}
	ports := []hostcheck.Port{
		{Host: "127.0.0.1", Port: datastore.EtcdClientPort, What: "embedded etcd (clients)"},
		{Host: c.Etcd.IP, Port: datastore.EtcdPeerPort, What: "embedded etcd (peers)"},
	}
	if ip := net.ParseIP(c.Etcd.IP); ip != nil && !ip.IsLoopback() {
		ports = append(ports, hostcheck.Port{Host: c.Etcd.IP, Port: datastore.EtcdClientPort, What: "embedded etcd (clients)"})
	}
	return ports
}

// restoreSnapshot is --cluster-reset --cluster-reset-restore-path: it
// puts the snapshot in place of the data dir's datastore, with the server
// stopped, and returns; the next plain start serves it.
func restoreSnapshot(c datastore.Config, path string, log klog.Logger) error {
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
	r, err := datastore.Restore(c, path)
	if err != nil {
		return fmt.Errorf("--cluster-reset-restore-path: %w", err)
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

// snapshotSchedule takes a snapshot of the embedded datastore at the times
// of --snapshot-schedule-cron and keeps the newest --snapshot-retention.
func snapshotSchedule(c *config.Server, l datadir.Layout, store datastore.Snapshotter, log klog.Logger) (component.Component, error) {
	sched, err := config.ParseSchedule(c.Snapshots.Schedule)
	if err != nil {
		return nil, err
	}
	dir := snapshotDir(c.Snapshots.Dir, l)
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
