// Package datastore runs the store behind the apiserver. Every kind (kine on
// SQLite, Postgres or MySQL today; embedded etcd later) is a component that
// tells the apiserver how to reach it.
package datastore

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/kubling/kubling/pkg/component"
)

// Backend is how the apiserver reaches the datastore.
type Backend struct {
	Endpoints []string
	CAFile    string
	CertFile  string
	KeyFile   string
}

// Datastore is a component that serves the etcd API to the apiserver.
type Datastore interface {
	component.Component
	// Backend is valid once Start has returned.
	Backend() Backend
}

// Config selects and places the datastore.
type Config struct {
	// DataDir is kubling's data dir; SQLite lives under server/db there.
	DataDir string
	// Endpoint is empty for the embedded SQLite default, or a kine DSN such
	// as postgres://… or mysql://….
	Endpoint string
}

// SQLitePath is where the default datastore keeps its database.
func SQLitePath(dataDir string) string {
	return filepath.Join(dataDir, "server", "db", "state.db")
}

// New returns the datastore the configuration asks for.
func New(c Config) (Datastore, error) {
	scheme, _, _ := strings.Cut(c.Endpoint, "://")
	switch {
	case c.Endpoint == "", scheme == "sqlite":
		return newKine(c, "sqlite"), nil
	case scheme == "postgres", scheme == "mysql":
		return newKine(c, scheme), nil
	default:
		return nil, fmt.Errorf("--datastore-endpoint: unsupported scheme %q (want sqlite://, postgres:// or mysql://)", scheme)
	}
}
