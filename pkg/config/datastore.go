package config

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/robfig/cron/v3"
)

// Datastore is where the server keeps the cluster's state, and how it
// recovers it.
type Datastore struct {
	// Endpoint is empty for the embedded SQLite database (or embedded etcd
	// with ClusterInit), else postgres://…, mysql://…, sqlite://… or
	// https://… for etcd (--datastore-endpoint).
	Endpoint string
	// EndpointFile holds Endpoint (--datastore-endpoint-file), so a
	// password in it is on no command line.
	EndpointFile string
	// CAFile, CertFile and KeyFile reach an external datastore over TLS.
	CAFile, CertFile, KeyFile string
	// ClusterInit runs embedded etcd (--cluster-init).
	ClusterInit bool
	// JoinURL is another server of the cluster this one joins, on
	// embedded etcd (--server).
	JoinURL string
	// ClusterReset makes embedded etcd a one-member cluster on this
	// server's data (--cluster-reset); with RestorePath, it restores that
	// snapshot into the data dir instead, and exits.
	ClusterReset bool
	RestorePath  string
}

func (d *Datastore) normalize() error {
	if err := fromFile(&d.Endpoint, d.EndpointFile, "--datastore-endpoint"); err != nil {
		return err
	}
	for flag, path := range map[string]*string{"--datastore-cafile": &d.CAFile, "--datastore-certfile": &d.CertFile, "--datastore-keyfile": &d.KeyFile, "--cluster-reset-restore-path": &d.RestorePath} {
		if *path == "" {
			continue
		}
		abs, err := filepath.Abs(*path)
		if err != nil {
			return fmt.Errorf("%s: %w", flag, err)
		}
		*path = abs
	}
	return nil
}

// validate checks the datastore flags that go together; the datastore
// itself (datastore.New) checks the endpoint and the files.
func (d *Datastore) validate() error {
	switch {
	case d.RestorePath != "" && !d.ClusterReset:
		return errors.New("--cluster-reset-restore-path goes with --cluster-reset")
	case d.ClusterReset && d.Endpoint != "":
		return errors.New("--cluster-reset is for the embedded datastores; an external one (--datastore-endpoint) is restored with its own tools")
	}
	return nil
}

// DefaultSnapshotSchedule takes a snapshot at minute 0 every 12 hours, as
// K3s does.
const (
	DefaultSnapshotSchedule  = "0 */12 * * *"
	DefaultSnapshotRetention = 5
)

// Snapshots are the scheduled snapshots of the embedded datastore.
type Snapshots struct {
	// Schedule is a cron expression (five fields, or @every 1h and the
	// like); Disable turns the schedule off.
	Schedule string
	Disable  bool
	// Retention is how many scheduled snapshots of this node are kept.
	Retention int
	// Dir holds them; empty means <data-dir>/server/db/snapshots.
	Dir      string
	Compress bool
}

func (s *Snapshots) normalize() error {
	if s.Dir == "" {
		return nil
	}
	abs, err := filepath.Abs(s.Dir)
	if err != nil {
		return fmt.Errorf("--snapshot-dir: %w", err)
	}
	s.Dir = abs
	return nil
}

func (s *Snapshots) validate() error {
	if s.Disable {
		return nil
	}
	if _, err := ParseSchedule(s.Schedule); err != nil {
		return err
	}
	if s.Retention < 1 {
		return fmt.Errorf("--snapshot-retention %d: keep at least 1 (turn the schedule off with --disable-snapshots)", s.Retention)
	}
	return nil
}

// ParseSchedule parses a --snapshot-schedule-cron expression.
func ParseSchedule(expr string) (cron.Schedule, error) {
	sched, err := cron.ParseStandard(expr)
	if err != nil {
		return nil, fmt.Errorf("--snapshot-schedule-cron %q: %v (want five fields such as %q, or @every 6h)", expr, err, DefaultSnapshotSchedule)
	}
	return sched, nil
}
