package server

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/klog/v2"

	"github.com/kubling/kubling/pkg/config"
	"github.com/kubling/kubling/pkg/datastore"
)

// planFor plans a start with the given datastore flags on a data dir,
// which holds etcd data when etcdData.
func planFor(t *testing.T, d config.Datastore, etcdData bool) (datastorePlan, *config.Server) {
	t.Helper()
	c := &config.Server{Node: config.Node{DataDir: t.TempDir(), NodeName: "s1", NodeIP: "192.0.2.10"}, Datastore: d}
	if etcdData {
		snap := filepath.Join(c.Layout().EtcdDir(), "member", "snap")
		if err := os.MkdirAll(snap, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(snap, "db"), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return planDatastore(c, c.Layout(), klog.Background()), c
}

func TestDatastorePlan(t *testing.T) {
	type want struct {
		kind                                         datastore.Kind
		startsFirst, joinServer, etcdMember, elected bool
		ports                                        int
	}
	for _, tc := range []struct {
		name     string
		flags    config.Datastore
		etcdData bool
		want     want
	}{
		{"default: embedded SQLite, one server", config.Datastore{}, false, want{kind: datastore.KindSQLite}},
		{"--cluster-init: embedded etcd", config.Datastore{ClusterInit: true}, false, want{kind: datastore.KindEtcd, etcdMember: true, elected: true, ports: 3}},
		{"etcd data and no flag: etcd goes on", config.Datastore{}, true, want{kind: datastore.KindEtcd, etcdMember: true, elected: true, ports: 3}},
		{"--server on an empty data dir: join first", config.Datastore{JoinURL: "https://192.0.2.1:6443"}, false, want{kind: datastore.KindEtcd, joinServer: true, etcdMember: true, elected: true, ports: 3}},
		{"--server again after the join: a member already", config.Datastore{JoinURL: "https://192.0.2.1:6443"}, true, want{kind: datastore.KindEtcd, etcdMember: true, elected: true, ports: 3}},
		{"postgres: starts before the certificates", config.Datastore{Endpoint: "postgres://u:p@db/k"}, false, want{kind: datastore.KindSQL, startsFirst: true, elected: true}},
		{"external etcd: starts before the certificates", config.Datastore{Endpoint: "https://etcd:2379"}, false, want{kind: datastore.KindExternalEtcd, startsFirst: true, elected: true}},
		{"sqlite:// endpoint", config.Datastore{Endpoint: "sqlite:///tmp/x.db"}, false, want{kind: datastore.KindSQLite}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, _ := planFor(t, tc.flags, tc.etcdData)
			got := want{p.kind, p.startsFirst, p.joinServer, p.etcdMember, p.elected, len(p.ports)}
			if got != tc.want {
				t.Fatalf("plan %+v, want %+v", got, tc.want)
			}
			if p.config.Etcd.IP != "192.0.2.10" || p.config.Etcd.Name != "s1" {
				t.Errorf("etcd member %s at %s, want s1 at --node-ip", p.config.Etcd.Name, p.config.Etcd.IP)
			}
			if p.restore != "" {
				t.Errorf("restore %q without the flag", p.restore)
			}
			if _, err := p.open(); err != nil {
				t.Errorf("open: %v", err)
			}
		})
	}
}

func TestDatastorePlanRefusesBeforeAnything(t *testing.T) {
	p, _ := planFor(t, config.Datastore{RestorePath: "/backups/s.db", ClusterReset: true}, false)
	if p.restore != "/backups/s.db" {
		t.Fatalf("restore = %q", p.restore)
	}
	// A data dir on embedded etcd given an SQLite file: refused by the one
	// datastore.New of the start, before anything is written.
	p, c := planFor(t, config.Datastore{Endpoint: "sqlite:///tmp/other.db"}, true)
	if _, err := p.open(); err == nil || !strings.Contains(err.Error(), "embedded etcd") {
		t.Fatalf("open: %v", err)
	}
	for _, path := range []string{c.Layout().ServerTLS(), c.Layout().Token(), c.Layout().SQLiteDB()} {
		if _, err := os.Stat(path); !os.IsNotExist(err) {
			t.Fatalf("the refused plan left %s (%v)", path, err)
		}
	}
	// --cluster-reset with no etcd member to reset.
	p, _ = planFor(t, config.Datastore{ClusterReset: true}, false)
	if _, err := p.open(); err == nil || !strings.Contains(err.Error(), "--cluster-reset") {
		t.Fatalf("open: %v", err)
	}
}
