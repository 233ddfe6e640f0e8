package server

import (
	"net"

	"k8s.io/klog/v2"

	"github.com/kubling/kubling/pkg/config"
	"github.com/kubling/kubling/pkg/datadir"
	"github.com/kubling/kubling/pkg/datastore"
	"github.com/kubling/kubling/pkg/hostcheck"
)

// datastorePlan is what the datastore the flags ask for means for this
// start, decided once (planDatastore): Run reads its fields and tests
// nothing else about the datastore.
type datastorePlan struct {
	config datastore.Config
	kind   datastore.Kind
	// restore is --cluster-reset-restore-path: restore the snapshot, stop.
	restore string
	// startsFirst: an external datastore (SQL, external etcd) needs none of
	// kubling's certificates, so it starts before them, and a new server
	// takes the cluster's keys from it.
	startsFirst bool
	// joinServer: --server, and no etcd data yet: this server asks that
	// one for the cluster's keys and an etcd membership before it starts.
	joinServer bool
	// etcdMember: embedded etcd: etcd's certificates, the etcd-member
	// controller, and this server answers server joins.
	etcdMember bool
	// elected: more than one server can share the datastore, so the
	// per-cluster components run only under the control-plane Lease.
	elected bool
	// ports are those the datastore will listen on (preflight).
	ports []hostcheck.Port
}

// planDatastore decides the plan from the flags and the data dir.
func planDatastore(c *config.Server, l datadir.Layout, log klog.Logger) datastorePlan {
	cfg := datastoreConfig(c, l, log)
	kind := datastore.KindOf(cfg)
	return datastorePlan{
		config:      cfg,
		kind:        kind,
		restore:     c.Datastore.RestorePath,
		startsFirst: kind == datastore.KindSQL || kind == datastore.KindExternalEtcd,
		joinServer:  c.JoinURL != "" && !datastore.HasEtcdData(l),
		etcdMember:  kind == datastore.KindEtcd,
		elected:     kind != datastore.KindSQLite,
		ports:       datastorePorts(cfg),
	}
}

// open returns the datastore, not started: the only datastore.New of a
// start, which also refuses a configuration no kind can serve.
func (p datastorePlan) open() (datastore.Datastore, error) {
	return datastore.New(p.config)
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
