package datastore

import (
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/klog/v2"
)

// sqlStore is kine on a Postgres or MySQL server. The endpoint is kine's DSN
// as given, and Config.TLS the files kine reaches the server with. It has no
// optional capabilities: the server's own tools back it up.
type sqlStore struct {
	*kineServer
	dsn string
	log klog.Logger
}

var _ Datastore = (*sqlStore)(nil)

// newSQL returns the kind for scheme, postgres or mysql.
func newSQL(c Config, scheme string) *sqlStore {
	return &sqlStore{kineServer: newKineServer(c, scheme, c.TLS), dsn: c.Endpoint, log: c.Log}
}

// Start does nothing: the server may not answer yet, so Ready starts kine,
// retrying.
func (s *sqlStore) Start(context.Context) error { return nil }

// Ready starts kine on the server until it succeeds, pausing 1 s, 2 s, 4 s…
// (at most 30 s) between tries and logging each failure, so an unreachable
// server or wrong credentials show at once and a server that comes up later
// is used.
func (s *sqlStore) Ready(ctx context.Context) error {
	backoff := wait.Backoff{Duration: time.Second, Factor: 2, Steps: 1 << 30, Cap: 30 * time.Second}
	var last error
	err := wait.ExponentialBackoffWithContext(ctx, backoff, func(context.Context) (bool, error) {
		last = s.start(s.dsn)
		if last == nil {
			return true, nil
		}
		s.log.Info("Datastore not reachable yet; retrying", "endpoint", redact(s.dsn), "err", last.Error())
		return false, nil
	})
	if err != nil && last != nil {
		return fmt.Errorf("%s: %w", redact(s.dsn), last)
	}
	return err
}
