// Package datastore runs the store behind the apiserver: a component that
// serves the etcd API and tells the apiserver how to reach it (Backend).
//
// Kinds, one file each, chosen by New from Config.Endpoint:
//
//   - sqlite.go: embedded SQLite, the default (empty endpoint or sqlite://).
//     kine serves a SQLite database under the data dir. It can take
//     snapshots (Snapshotter).
//   - sql.go: Postgres (postgres://) and MySQL (mysql://). kine serves a
//     database on an external server; the endpoint is kine's DSN as given.
//   - etcd.go: embedded etcd (--cluster-init, or a data dir that already
//     holds an etcd member), in this process, with TLS from its own CA. It
//     can take snapshots. migrate.go moves a SQLite database into it once.
//   - etcdexternal.go: an etcd cluster elsewhere (https:// or http://
//     endpoints, comma-separated), which the apiserver reaches directly.
//
// kine.go runs kine for all of them: the etcd API on a unix socket under the
// data dir that only root, hence the apiserver, can reach.
//
// To add a kind (embedded etcd, say), write one file with a type that
// implements Datastore, give it a scheme in New, and implement the optional
// capabilities of capabilities.go it can honour; callers find those by type
// assertion. Next to the type, check both at compile time:
//
//	var _ Datastore = (*etcdStore)(nil)
//	var _ Snapshotter = (*etcdStore)(nil)
package datastore

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"

	"k8s.io/klog/v2"

	"github.com/kubling/kubling/pkg/component"
	"github.com/kubling/kubling/pkg/datadir"
)

// Backend is how the apiserver reaches the datastore: its etcd endpoints and
// the TLS files of an etcd client, empty when the endpoints need no TLS.
type Backend struct {
	Endpoints []string
	CAFile    string
	CertFile  string
	KeyFile   string
}

// Datastore is a component that serves the etcd API to the apiserver. A kind
// may also implement optional capabilities, such as Snapshotter.
type Datastore interface {
	component.Component
	// Backend is how the apiserver reaches the datastore. Its endpoints are
	// valid as soon as New returns, so the apiserver's configuration can be
	// written before Start; once Start has returned it also carries the
	// TLS files the datastore's listener wants, if any.
	Backend() Backend
}

// TLSFiles are the client certificate files of a TLS connection. Empty
// fields are not used.
type TLSFiles struct {
	CAFile   string
	CertFile string
	KeyFile  string
}

// Config selects and places the datastore.
type Config struct {
	// Layout places the embedded SQLite database (Layout.SQLiteDB) and
	// kine's socket (Layout.KineSocket).
	Layout datadir.Layout
	// Endpoint is empty or sqlite:// for the embedded SQLite database, or a
	// kine DSN such as postgres://… or mysql://… for a database on an
	// external server.
	Endpoint string
	// TLS are the files kine uses to reach an external SQL server (Postgres
	// or MySQL), or the apiserver an external etcd. The embedded kinds have
	// no use for them.
	TLS TLSFiles
	// ClusterInit asks for embedded etcd (--cluster-init).
	ClusterInit bool
	// Etcd is this server's member of embedded etcd.
	Etcd EtcdMember
	// Log is for what a kind does on its own (moving data, retrying).
	Log klog.Logger
}

// Kind names a datastore kind, in errors and in `kubling snapshot ls`.
type Kind string

const (
	KindSQLite       Kind = "sqlite"
	KindSQL          Kind = "sql"
	KindEtcd         Kind = "etcd"
	KindExternalEtcd Kind = "external-etcd"
)

// KindOf is the kind New picks for c, without checking c further.
func KindOf(c Config) Kind {
	scheme, _, _ := strings.Cut(c.Endpoint, "://")
	switch {
	case c.Endpoint == "" && (c.ClusterInit || etcdHasData(c.Layout.EtcdDir())):
		return KindEtcd
	case c.Endpoint == "", scheme == "sqlite":
		return KindSQLite
	case scheme == "postgres", scheme == "mysql":
		return KindSQL
	case scheme == "https", scheme == "http":
		return KindExternalEtcd
	}
	return ""
}

// New returns the datastore the configuration asks for. It starts nothing
// and writes nothing; it refuses a configuration no kind can serve.
func New(c Config) (Datastore, error) {
	if c.Log.GetSink() == nil {
		c.Log = klog.Background()
	}
	kind := KindOf(c)
	if c.ClusterInit && c.Endpoint != "" {
		return nil, fmt.Errorf("--cluster-init runs etcd inside kubling; it cannot be combined with --datastore-endpoint %s", redact(c.Endpoint))
	}
	if kind == KindSQLite && c.Endpoint != "" && etcdHasData(c.Layout.EtcdDir()) {
		return nil, fmt.Errorf("--datastore-endpoint %s: this data dir's datastore is embedded etcd (%s); drop the flag to use it", redact(c.Endpoint), c.Layout.EtcdDir())
	}
	if c.Etcd.Reset && kind != KindEtcd {
		return nil, errors.New("--cluster-reset: this data dir holds no embedded etcd member to reset (restore a snapshot with --cluster-reset-restore-path FILE)")
	}
	if c.Etcd.Reset {
		if err := checkReset(c.Layout.EtcdDir()); err != nil {
			return nil, err
		}
	}
	if err := c.TLS.check(); err != nil {
		return nil, err
	}
	if kind != KindSQL && kind != KindExternalEtcd && c.TLS != (TLSFiles{}) {
		return nil, errors.New("--datastore-cafile, --datastore-certfile and --datastore-keyfile are for an external datastore (--datastore-endpoint postgres://, mysql:// or https://)")
	}
	switch kind {
	case KindEtcd:
		return newEtcd(c), nil
	case KindSQLite:
		return newSQLite(c), nil
	case KindSQL:
		return newSQL(c, strings.SplitN(c.Endpoint, "://", 2)[0]), nil
	case KindExternalEtcd:
		return newExternalEtcd(c)
	}
	scheme, _, _ := strings.Cut(c.Endpoint, "://")
	return nil, fmt.Errorf("--datastore-endpoint: unsupported scheme %q (want sqlite://, postgres://, mysql:// or https:// for etcd)", scheme)
}

// check refuses TLS files that cannot be read, naming the flag.
func (t TLSFiles) check() error {
	for flag, path := range map[string]string{"--datastore-cafile": t.CAFile, "--datastore-certfile": t.CertFile, "--datastore-keyfile": t.KeyFile} {
		if path == "" {
			continue
		}
		f, err := os.Open(path)
		if err != nil {
			return fmt.Errorf("%s: %w", flag, err)
		}
		f.Close()
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		return errors.New("--datastore-certfile and --datastore-keyfile go together")
	}
	return nil
}

// passwordParam is a password given as a parameter (PostgreSQL's
// ?password=, sslpassword=; a MySQL DSN's).
var passwordParam = regexp.MustCompile(`(?i)(password=)[^&;\s]*`)

// redact is an endpoint fit for errors and logs: without its password,
// whether in the user part (which may itself hold an @) or a parameter.
func redact(endpoint string) string {
	endpoint = passwordParam.ReplaceAllString(endpoint, "${1}xxxxx")
	u, err := url.Parse(endpoint)
	if err != nil || u.User == nil {
		// A DSN url.Parse refuses (mysql's user:pass@tcp(host)/db, or a
		// password with characters a URL must escape): the user part ends
		// at the last @ before the address.
		head := endpoint
		if i := strings.Index(head, "("); i >= 0 {
			head = head[:i]
		}
		if i := strings.LastIndex(head, "@"); i >= 0 {
			if j := strings.Index(endpoint, "://"); j >= 0 && j < i {
				return endpoint[:j+3] + "…" + endpoint[i:]
			}
		}
		return endpoint
	}
	return u.Redacted()
}
