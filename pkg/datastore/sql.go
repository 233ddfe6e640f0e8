package datastore

import "context"

// sqlStore is kine on a Postgres or MySQL server. The endpoint is kine's DSN
// as given, and Config.TLS the files kine reaches the server with. It has no
// optional capabilities: the server's own tools back it up.
type sqlStore struct {
	*kineServer
	dsn string
}

var _ Datastore = (*sqlStore)(nil)

// newSQL returns the kind for scheme, postgres or mysql.
func newSQL(c Config, scheme string) *sqlStore {
	return &sqlStore{kineServer: newKineServer(c, scheme, c.TLS), dsn: c.Endpoint}
}

func (s *sqlStore) Start(context.Context) error { return s.start(s.dsn) }
