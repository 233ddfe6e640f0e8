package datastore

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/k3s-io/kine/pkg/drivers/generic"
	"github.com/k3s-io/kine/pkg/drivers/sqlite"
	"github.com/k3s-io/kine/pkg/endpoint"
)

// kine serves the etcd API from a SQL database on a unix socket only the
// apiserver (root) can reach.
type kine struct {
	cfg     Config
	driver  string
	socket  string
	backend Backend
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

func newKine(c Config, driver string) *kine {
	return &kine{cfg: c, driver: driver, socket: filepath.Join(c.DataDir, "server", "kine.sock")}
}

func (k *kine) Name() string { return "datastore" }

func (k *kine) Backend() Backend { return k.backend }

func (k *kine) dsn() (string, error) {
	if k.driver != "sqlite" || k.cfg.Endpoint != "" {
		return k.cfg.Endpoint, nil
	}
	db := SQLitePath(k.cfg.DataDir)
	if err := os.MkdirAll(filepath.Dir(db), 0o700); err != nil {
		return "", err
	}
	return "sqlite://" + db + "?" + sqlite.DefaultParams, nil
}

func (k *kine) Start(context.Context) error {
	dsn, err := k.dsn()
	if err != nil {
		return err
	}
	// kine lives until Stop, not until the start-up context ends.
	ctx, cancel := context.WithCancel(context.Background())
	k.cancel = cancel
	etcd, err := endpoint.Listen(ctx, endpoint.Config{
		Listener:             "unix://" + k.socket,
		Endpoint:             dsn,
		WaitGroup:            &k.wg,
		ConnectionPoolConfig: generic.ConnectionPoolConfig{MaxIdle: 2, MaxIdleTime: 2 * time.Minute},
		NotifyInterval:       5 * time.Second,
		EmulatedETCDVersion:  "3.6.11",
		CompactTimeout:       5 * time.Second,
		CompactMinRetain:     1000,
		CompactBatchSize:     1000,
		PollBatchSize:        500,
		PollInterval:         time.Second,
	})
	if err != nil {
		cancel()
		return fmt.Errorf("kine (%s): %w", k.driver, err)
	}
	k.backend = Backend{Endpoints: etcd.Endpoints, CAFile: etcd.TLSConfig.CAFile}
	return nil
}

// Ready returns at once: endpoint.Listen returns only once the backend has
// started and the socket listens. The apiserver's own etcd check follows.
func (k *kine) Ready(context.Context) error { return nil }

func (k *kine) Stop() error {
	k.cancel()
	done := make(chan struct{})
	go func() { k.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("kine did not stop within 10s")
	}
}
