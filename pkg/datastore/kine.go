package datastore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/k3s-io/kine/pkg/drivers"
	"github.com/k3s-io/kine/pkg/drivers/generic"
	"github.com/k3s-io/kine/pkg/server"
	kinetls "github.com/k3s-io/kine/pkg/tls"
	"go.etcd.io/etcd/server/v3/embed"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
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

// driverConfig is kine's configuration for opening dsn.
func (k *kineServer) driverConfig(dsn string) drivers.Config {
	return drivers.Config{
		Endpoint: dsn,
		BackendTLSConfig: kinetls.Config{
			CAFile:   k.backendTLS.CAFile,
			CertFile: k.backendTLS.CertFile,
			KeyFile:  k.backendTLS.KeyFile,
		},
		ConnectionPoolConfig: generic.ConnectionPoolConfig{MaxIdle: 2, MaxIdleTime: 2 * time.Minute},
		CompactTimeout:       5 * time.Second,
		CompactMinRetain:     1000,
		CompactBatchSize:     1000,
		PollBatchSize:        500,
		PollInterval:         time.Second,
	}
}

// start runs kine on dsn until Stop and returns once it serves. If ctx
// ends first (kubling stopped while kine waits for its database: kine's own
// connect loop runs for minutes), kine is stopped and start returns.
func (k *kineServer) start(ctx context.Context, dsn string) error {
	// A new server on an external datastore starts it before anything
	// else is in the data dir.
	if err := os.MkdirAll(filepath.Dir(k.socket), 0o700); err != nil {
		return fmt.Errorf("kine (%s): %w", k.driver, err)
	}
	// kine lives until Stop, not until the start-up context ends.
	life, cancel := context.WithCancel(context.Background())
	stopOnEnd := context.AfterFunc(ctx, cancel)
	err := k.serve(life, dsn)
	if !stopOnEnd() && err == nil {
		err = ctx.Err()
	}
	if err != nil {
		cancel()
		k.wg.Wait()
		return fmt.Errorf("kine (%s): %w", k.driver, err)
	}
	k.cancel = cancel
	return nil
}

// serve opens dsn's backend and serves the etcd API on the socket until ctx
// ends: the wiring kine's endpoint package does, which kubling does not
// use because it links every driver kine has (NATS with a JetStream
// client, t4 with pebble and an S3 client: 13 MB of kubling's binary for
// datastores kubling does not offer). The drivers kubling offers register
// themselves through the imports in kinedrivers.go.
func (k *kineServer) serve(ctx context.Context, dsn string) error {
	// The backend outlives the gRPC server by its graceful stop, so the
	// apiserver's last requests are answered.
	bctx, bcancel := context.WithCancel(context.Background())
	cfg := k.driverConfig(dsn)
	_, backend, err := drivers.New(bctx, &k.wg, &cfg)
	if err != nil {
		bcancel()
		// kine's error only: the DSN may carry a password.
		return fmt.Errorf("open the datastore: %w", err)
	}
	if backend == nil { // drivers that hand over to an etcd: none of kubling's
		bcancel()
		return errors.New("open the datastore: kine returned no backend")
	}
	if err := backend.Start(bctx); err != nil {
		bcancel()
		return fmt.Errorf("start kine's backend: %w", err)
	}
	if err := os.Remove(k.socket); err != nil && !errors.Is(err, fs.ErrNotExist) {
		bcancel()
		return fmt.Errorf("remove the old socket: %w", err)
	}
	lis, err := net.Listen("unix", k.socket)
	if err == nil {
		err = os.Chmod(k.socket, 0o600)
	}
	if err != nil {
		bcancel()
		if lis != nil {
			lis.Close()
		}
		return fmt.Errorf("listen: %w", err)
	}
	// etcd's own server limits, as the apiserver expects of an etcd.
	srv := grpc.NewServer(
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: embed.DefaultGRPCKeepAliveMinTime}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: embed.DefaultGRPCKeepAliveInterval, Timeout: embed.DefaultGRPCKeepAliveTimeout}),
		grpc.MaxConcurrentStreams(embed.DefaultMaxConcurrentStreams),
		grpc.MaxRecvMsgSize(int(embed.DefaultMaxRequestBytes)+512*1024),
		grpc.MaxSendMsgSize(math.MaxInt32),
	)
	server.New(backend, "unix", 5*time.Second, "3.6.11").Register(srv)
	k.wg.Add(2)
	go func() {
		defer k.wg.Done()
		_ = srv.Serve(lis) // returns when stopped below
	}()
	go func() {
		defer k.wg.Done()
		<-ctx.Done()
		force := time.AfterFunc(2*time.Second, srv.Stop)
		srv.GracefulStop()
		force.Stop()
		bcancel()
	}()
	return nil
}

// Ready returns at once: start returns only once the backend has
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
