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
	"fmt"
	"strings"

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
	// or MySQL). The embedded SQLite kind has no use for them.
	TLS TLSFiles
}

// New returns the datastore the configuration asks for. It starts nothing.
func New(c Config) (Datastore, error) {
	scheme, _, _ := strings.Cut(c.Endpoint, "://")
	switch {
	case c.Endpoint == "", scheme == "sqlite":
		return newSQLite(c), nil
	case scheme == "postgres", scheme == "mysql":
		return newSQL(c, scheme), nil
	default:
		return nil, fmt.Errorf("--datastore-endpoint: unsupported scheme %q (want sqlite://, postgres:// or mysql://)", scheme)
	}
}
