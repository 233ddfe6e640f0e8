package datastore

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/k3s-io/kine/pkg/drivers/generic"
	"github.com/k3s-io/kine/pkg/endpoint"
	kinetls "github.com/k3s-io/kine/pkg/tls"
)

// kineServer serves the etcd API from a SQL database on a unix socket only
// the apiserver (root) can reach. Every kind embeds one and starts it with
// its own DSN; it gives them Name, Backend, Ready and Stop.
type kineServer struct {
	driver     string   // sqlite, postgres or mysql; for errors
	socket     string   // kine's listener
	backendTLS TLSFiles // kine's client files for the SQL server
	backend    Backend
	cancel     context.CancelFunc
	wg         sync.WaitGroup
}

// newKineServer decides kine's socket, hence the Backend's endpoint, at once.
func newKineServer(c Config, driver string, backendTLS TLSFiles) *kineServer {
	socket := c.Layout.KineSocket()
	return &kineServer{
		driver:     driver,
		socket:     socket,
		backendTLS: backendTLS,
		backend:    Backend{Endpoints: []string{"unix://" + socket}},
	}
}

func (k *kineServer) Name() string { return "datastore" }

func (k *kineServer) Backend() Backend { return k.backend }

// endpointConfig is kine's configuration for serving dsn.
func (k *kineServer) endpointConfig(dsn string) endpoint.Config {
	return endpoint.Config{
		Listener:  "unix://" + k.socket,
		Endpoint:  dsn,
		WaitGroup: &k.wg,
		BackendTLSConfig: kinetls.Config{
			CAFile:   k.backendTLS.CAFile,
			CertFile: k.backendTLS.CertFile,
			KeyFile:  k.backendTLS.KeyFile,
		},
		ConnectionPoolConfig: generic.ConnectionPoolConfig{MaxIdle: 2, MaxIdleTime: 2 * time.Minute},
		NotifyInterval:       5 * time.Second,
		EmulatedETCDVersion:  "3.6.11",
		CompactTimeout:       5 * time.Second,
		CompactMinRetain:     1000,
		CompactBatchSize:     1000,
		PollBatchSize:        500,
		PollInterval:         time.Second,
	}
}

// start runs kine on dsn until Stop and returns once it serves.
func (k *kineServer) start(dsn string) error {
	// A new server on an external datastore starts it before anything
	// else is in the data dir.
	if err := os.MkdirAll(filepath.Dir(k.socket), 0o700); err != nil {
		return fmt.Errorf("kine (%s): %w", k.driver, err)
	}
	// kine lives until Stop, not until the start-up context ends.
	ctx, cancel := context.WithCancel(context.Background())
	etcd, err := endpoint.Listen(ctx, k.endpointConfig(dsn))
	if err != nil {
		cancel()
		return fmt.Errorf("kine (%s): %w", k.driver, err)
	}
	k.cancel = cancel
	if !slices.Equal(etcd.Endpoints, k.backend.Endpoints) {
		// The apiserver may already be configured with the endpoint New
		// promised; serving elsewhere would leave it talking to nothing.
		err := fmt.Errorf("kine (%s) serves %v, not %v", k.driver, etcd.Endpoints, k.backend.Endpoints)
		if serr := k.Stop(); serr != nil {
			err = fmt.Errorf("%w; stop: %w", err, serr)
		}
		return err
	}
	k.backend.CAFile = etcd.TLSConfig.CAFile
	k.backend.CertFile = etcd.TLSConfig.CertFile
	k.backend.KeyFile = etcd.TLSConfig.KeyFile
	return nil
}

// Ready returns at once: endpoint.Listen returns only once the backend has
// started and the socket listens. The apiserver's own etcd check follows.
func (k *kineServer) Ready(context.Context) error { return nil }

func (k *kineServer) Stop() error {
	if k.cancel == nil {
		return nil // never started (sqlStore.Ready gave up)
	}
	k.cancel()
	done := make(chan struct{})
	go func() { k.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("kine (%s) did not stop within 10s", k.driver)
	}
}
