package datastore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/k3s-io/kine/pkg/drivers/sqlite"
	sqlite3 "github.com/mattn/go-sqlite3"

	"github.com/kubling/kubling/pkg/fileutil"
)

// sqliteStore is the default kind: kine on a SQLite database at
// Layout.SQLiteDB(), in WAL mode (sqlite.DefaultParams), unless a
// sqlite://<dsn> endpoint names a DSN of its own.
type sqliteStore struct {
	*kineServer
	dsn  string // kine's DSN, without the sqlite:// scheme
	path string // the database file
}

var (
	_ Datastore   = (*sqliteStore)(nil)
	_ Snapshotter = (*sqliteStore)(nil)
)

func newSQLite(c Config) *sqliteStore {
	s := &sqliteStore{kineServer: newKineServer(c, "sqlite", TLSFiles{})}
	if dsn := strings.TrimPrefix(c.Endpoint, "sqlite://"); dsn != "" {
		// A DSN of its own goes to kine as given.
		s.dsn, s.path = dsn, sqlitePath(dsn)
	} else {
		s.path = c.Layout.SQLiteDB()
		s.dsn = s.path + "?" + sqlite.DefaultParams
	}
	return s
}

// sqlitePath is the database file of a go-sqlite3 DSN: a path or a file:
// URI, either followed by ?parameters.
func sqlitePath(dsn string) string {
	path, _, _ := strings.Cut(dsn, "?")
	if !strings.HasPrefix(path, "file:") {
		return path
	}
	u, err := url.Parse(path)
	if err != nil {
		return path
	}
	if u.Opaque != "" {
		return u.Opaque // file:relative.db
	}
	return u.Path
}

func (s *sqliteStore) Start(ctx context.Context) error {
	if err := os.MkdirAll(filepath.Dir(s.path), 0o700); err != nil {
		return fmt.Errorf("sqlite database folder: %w", err)
	}
	return s.start(ctx, "sqlite://"+s.dsn)
}

// Snapshot copies the database with VACUUM INTO, on a connection of its own
// through the driver kine uses. VACUUM INTO reads in one transaction, so the
// copy is consistent, and in WAL mode kine goes on writing meanwhile.
func (s *sqliteStore) Snapshot(ctx context.Context, path string) error {
	// Opening a missing database would create an empty one.
	db, err := os.Stat(s.path)
	if err != nil {
		return fmt.Errorf("snapshot sqlite database: %w", err)
	}
	if to, err := os.Stat(path); err == nil && os.SameFile(db, to) {
		return fmt.Errorf("snapshot sqlite database: %s is the database itself", path)
	}
	// A plain path, not the DSN: a private cache, whatever kine's DSN asks.
	conn := sql.OpenDB(&sqliteConnector{dsn: s.path + "?_busy_timeout=30000"})
	defer conn.Close()
	err = fileutil.Replace(path, func(tmp string) error {
		if _, err := conn.ExecContext(ctx, "VACUUM INTO ?", tmp); err != nil {
			return fmt.Errorf("VACUUM INTO %s: %w", tmp, err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("snapshot sqlite database %s to %s: %w", s.path, path, err)
	}
	return nil
}

// sqliteConnector opens DSNs with go-sqlite3's driver itself, as kine does,
// rather than by the name it registers (which a build may change).
type sqliteConnector struct{ dsn string }

func (c *sqliteConnector) Connect(context.Context) (driver.Conn, error) {
	return c.Driver().Open(c.dsn)
}

func (c *sqliteConnector) Driver() driver.Driver { return &sqlite3.SQLiteDriver{} }
