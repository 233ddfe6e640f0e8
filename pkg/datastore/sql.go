package datastore

import (
	"context"
	"fmt"
	"time"

	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/kubling/kubling/pkg/retry"
)

// sqlStore is kine on a Postgres or MySQL server. The endpoint is kine's DSN
// as given, and Config.TLS the files kine reaches the server with. It has no
// optional capabilities: the server's own tools back it up.
type sqlStore struct {
	*kineServer
	dsn   string
	log   klog.Logger
	clock clock.Clock
}

var _ Datastore = (*sqlStore)(nil)

// newSQL returns the kind for scheme, postgres or mysql.
func newSQL(c Config, scheme string) *sqlStore {
	return &sqlStore{kineServer: newKineServer(c, scheme, c.TLS), dsn: c.Endpoint, log: c.Log, clock: clock.RealClock{}}
}

// Start does nothing: the server may not answer yet, so Ready starts kine,
// retrying.
func (s *sqlStore) Start(context.Context) error { return nil }

// Ready starts kine on the server until it succeeds or kubling is stopped,
// pausing 1 s, 2 s, 4 s… (then 30 s each time) between tries: a database that
// boots after kubling (a site's power cut) is used once it answers. Each new
// reason for failing (unreachable, wrong credentials) is logged once.
func (s *sqlStore) Ready(ctx context.Context) error {
	err := retry.Until(ctx, s.clock, retry.Backoff(30*time.Second), func(ctx context.Context) error {
		return s.start(ctx, s.dsn)
	}, func(err error, attempts int) {
		s.log.Info("Datastore not reachable yet; retrying until it is", "endpoint", redact(s.dsn), "attempt", attempts, "err", err.Error())
	})
	if err != nil {
		return fmt.Errorf("%s: %w", redact(s.dsn), err)
	}
	return nil
}
