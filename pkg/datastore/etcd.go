package datastore

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	"go.etcd.io/etcd/client/v3/snapshot"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/klog/v2"

	"github.com/kubling/kubling/pkg/component"
	"github.com/kubling/kubling/pkg/datadir"
	"github.com/kubling/kubling/pkg/fileutil"
)

// Embedded etcd's ports (DESIGN.md): clients on loopback and the member's
// address, peers on the member's address.
const (
	EtcdClientPort = 2379
	EtcdPeerPort   = 2380
)

// EtcdMember is what the embedded etcd kind needs beyond the data dir: who
// this member is and its certificates.
type EtcdMember struct {
	// Name is the member's name, unique in the cluster: the server's node
	// name.
	Name string
	// IP is the address other members and servers reach this one at.
	IP string
	// TLS are etcd's certificate files (all from one etcd CA).
	TLS EtcdTLS
	// Reset starts this member as a one-member cluster on its own data
	// (--cluster-reset), whatever members the data names.
	Reset bool
	// Join, when set, has a member without data join an existing cluster
	// (a server started with --server).
	Join *EtcdJoin
	// ClientPort and PeerPort replace EtcdClientPort and EtcdPeerPort
	// when set (tests that must not take the real ones).
	ClientPort, PeerPort int
}

func (m EtcdMember) clientPort() string { return portOr(m.ClientPort, EtcdClientPort) }
func (m EtcdMember) peerPort() string   { return portOr(m.PeerPort, EtcdPeerPort) }

func portOr(port, otherwise int) string {
	if port == 0 {
		port = otherwise
	}
	return fmt.Sprint(port)
}

// EtcdTLS are embedded etcd's certificate files: one CA for every listener,
// a serving certificate for clients, a peer certificate (serving and
// client) between members, and the client certificate the apiserver and
// kubling use.
type EtcdTLS struct {
	CAFile                string
	ServerCert, ServerKey string
	PeerCert, PeerKey     string
	ClientCert, ClientKey string
}

// etcdStore runs etcd in this process on Layout.EtcdDir(): the
// --cluster-init kind. Its data moves in from the SQLite database once when
// one is there and etcd's is not (migrateSQLite).
type etcdStore struct {
	dir    string
	member EtcdMember
	// sqlite is the database to move into etcd on the first start; empty
	// when there is none.
	sqlite string
	log    klog.Logger
	e      *embed.Etcd
	done   chan struct{}
	err    error
	// stopping silences etcd's log (untilStopped).
	stopping atomic.Bool
}

var (
	_ Datastore        = (*etcdStore)(nil)
	_ Snapshotter      = (*etcdStore)(nil)
	_ component.Exiter = (*etcdStore)(nil)
	_ MemberJoiner     = (*etcdStore)(nil)
)

// resetMarker records a finished --cluster-reset of the etcd data in dir.
func resetMarker(dir string) string { return dir + "-reset" }

// checkReset refuses --cluster-reset on data already reset by it.
func checkReset(dir string) error {
	stamp, err := os.ReadFile(resetMarker(dir))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("--cluster-reset: %w", err)
	}
	return fmt.Errorf("--cluster-reset: this server's etcd was already reset (%s); left in its flags, config file or environment it would split the cluster at every start: remove it (to reset again after another quorum loss, delete %s first)", strings.TrimSpace(string(stamp)), resetMarker(dir))
}

func newEtcd(c Config) *etcdStore {
	s := &etcdStore{dir: c.Layout.EtcdDir(), member: c.Etcd, log: c.Log}
	// A database still there was never moved, or its move stopped
	// part-way (migrateSQLite renames it only once every key is in etcd).
	if fileExists(c.Layout.SQLiteDB()) {
		s.sqlite = c.Layout.SQLiteDB()
	}
	return s
}

// JoinMembers: a server join's answer, before Start.
func (s *etcdStore) JoinMembers(j *EtcdJoin) { s.member.Join = j }

// etcdHasData says whether dir holds an etcd member's data.
func etcdHasData(dir string) bool { return fileExists(filepath.Join(dir, "member", "snap", "db")) }

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func (s *etcdStore) Name() string { return "datastore" }

// Backend: etcd's client listener on loopback, with the client certificate.
func (s *etcdStore) Backend() Backend {
	return Backend{
		Endpoints: []string{s.localClientURL()},
		CAFile:    s.member.TLS.CAFile,
		CertFile:  s.member.TLS.ClientCert,
		KeyFile:   s.member.TLS.ClientKey,
	}
}

func (s *etcdStore) localClientURL() string {
	return "https://" + net.JoinHostPort("127.0.0.1", s.member.clientPort())
}

// PeerURL is where other members reach this one.
func (s *etcdStore) PeerURL() string { return s.member.PeerURL() }

// PeerURL is where other members reach this one.
func (m EtcdMember) PeerURL() string {
	return "https://" + net.JoinHostPort(m.IP, m.peerPort())
}

// HasEtcdData says whether the data dir holds an embedded etcd member's
// data.
func HasEtcdData(l datadir.Layout) bool { return etcdHasData(l.EtcdDir()) }

// ClientURL is where other servers reach this member's client listener.
func (s *etcdStore) ClientURL() string {
	return "https://" + net.JoinHostPort(s.member.IP, s.member.clientPort())
}

// config is etcd's configuration for this member.
func (s *etcdStore) config() (*embed.Config, error) {
	urls := func(raw ...string) ([]url.URL, error) {
		var out []url.URL
		for _, r := range raw {
			u, err := url.Parse(r)
			if err != nil {
				return nil, err
			}
			out = append(out, *u)
		}
		return out, nil
	}
	cfg := embed.NewConfig()
	cfg.Name = s.member.Name
	cfg.Dir = s.dir
	var err error
	clients := []string{s.localClientURL()}
	if ip := net.ParseIP(s.member.IP); ip != nil && !ip.IsLoopback() {
		clients = append(clients, s.ClientURL())
	}
	if cfg.ListenClientUrls, err = urls(clients...); err != nil {
		return nil, err
	}
	if cfg.AdvertiseClientUrls, err = urls(clients[len(clients)-1]); err != nil {
		return nil, err
	}
	if cfg.ListenPeerUrls, err = urls(s.PeerURL()); err != nil {
		return nil, err
	}
	cfg.AdvertisePeerUrls = cfg.ListenPeerUrls
	cfg.InitialCluster = s.member.Name + "=" + s.PeerURL()
	cfg.ClusterState = embed.ClusterStateFlagNew
	if s.member.Join != nil && !etcdHasData(s.dir) {
		cfg.InitialCluster = s.member.Join.InitialCluster
		cfg.ClusterState = embed.ClusterStateFlagExisting
	}
	cfg.ForceNewCluster = s.member.Reset
	tlsInfo := func(cert, key string) transport.TLSInfo {
		return transport.TLSInfo{CertFile: cert, KeyFile: key, TrustedCAFile: s.member.TLS.CAFile, ClientCertAuth: true}
	}
	cfg.ClientTLSInfo = tlsInfo(s.member.TLS.ServerCert, s.member.TLS.ServerKey)
	cfg.PeerTLSInfo = tlsInfo(s.member.TLS.PeerCert, s.member.TLS.PeerKey)
	// No metrics or debug listener of its own: the ports stay 2379 and 2380.
	cfg.ListenMetricsUrls = nil
	// Warnings and errors to stderr, as JSON lines (etcd's own format),
	// but nothing once Stop has begun: etcd reports its listeners closing
	// as errors, with stack traces, on every clean stop.
	zc := zap.NewProductionConfig()
	zc.Level = zap.NewAtomicLevelAt(zap.WarnLevel)
	zc.OutputPaths, zc.ErrorOutputPaths = []string{"stderr"}, []string{"stderr"}
	lg, err := zc.Build(zap.WrapCore(func(c zapcore.Core) zapcore.Core { return untilStopped{c, &s.stopping} }))
	if err != nil {
		return nil, err
	}
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(lg)
	return cfg, nil
}

// untilStopped is a log core that drops everything once stopped is set.
type untilStopped struct {
	zapcore.Core
	stopped *atomic.Bool
}

func (c untilStopped) With(fields []zapcore.Field) zapcore.Core {
	return untilStopped{c.Core.With(fields), c.stopped}
}

func (c untilStopped) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.stopped.Load() {
		return ce
	}
	return c.Core.Check(e, ce)
}

func (s *etcdStore) Start(context.Context) error {
	if s.member.Name == "" || net.ParseIP(s.member.IP) == nil {
		return fmt.Errorf("embedded etcd: member name %q and address %q are both needed", s.member.Name, s.member.IP)
	}
	for _, f := range []string{s.member.TLS.CAFile, s.member.TLS.ServerCert, s.member.TLS.PeerCert, s.member.TLS.ClientCert} {
		if _, err := os.Stat(f); err != nil {
			return fmt.Errorf("embedded etcd: certificate: %w", err)
		}
	}
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return fmt.Errorf("embedded etcd data dir: %w", err)
	}
	cfg, err := s.config()
	if err != nil {
		return fmt.Errorf("embedded etcd: %w", err)
	}
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return fmt.Errorf("embedded etcd: %w", err)
	}
	s.e, s.done = e, make(chan struct{})
	go func() {
		select {
		case err := <-e.Err():
			s.err = err
		case <-e.Server.StopNotify():
			s.err = errors.New("etcd server stopped")
		}
		close(s.done)
	}()
	return nil
}

// Ready waits until the member serves (it has a leader), then moves the
// SQLite data in if there is any to move.
func (s *etcdStore) Ready(ctx context.Context) error {
	select {
	case <-s.e.Server.ReadyNotify():
	case <-s.done:
		return fmt.Errorf("embedded etcd: %w", s.err)
	case <-ctx.Done():
		return fmt.Errorf("embedded etcd has no leader yet: %w", ctx.Err())
	}
	if s.member.Reset {
		// Recorded, so that a --cluster-reset left in a config file or
		// unit does not make a cluster of one again at the next start,
		// dropping the servers that joined since.
		stamp := []byte(time.Now().UTC().Format(time.RFC3339) + "\n")
		if err := fileutil.WriteAtomic(resetMarker(s.dir), stamp, 0o600); err != nil {
			return fmt.Errorf("record the cluster reset: %w", err)
		}
		s.log.Info("Reset etcd to a cluster of this one member; remove --cluster-reset from this server's flags, config file and environment now", "member", s.member.Name)
	}
	if s.e.Server.IsLearner() {
		// A new server's member (or one restarted before it was promoted):
		// the apiserver cannot use a learner.
		if err := promote(ctx, s.promoteThrough(), uint64(s.e.Server.MemberID())); err != nil {
			return err
		}
		// Serving as a voter once this member has applied its promotion.
		if err := wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(context.Context) (bool, error) {
			return !s.e.Server.IsLearner(), nil
		}); err != nil {
			return fmt.Errorf("this etcd member was promoted but still acts as a learner: %w", err)
		}
		s.log.Info("Joined the etcd cluster as a voting member", "member", s.member.Name)
	}
	if s.sqlite == "" {
		return nil
	}
	client, err := Client(ctx, s.Backend())
	if err != nil {
		return err
	}
	defer client.Close()
	if err := migrateSQLite(ctx, s.log, s.sqlite, filepath.Dir(s.dir), client); err != nil {
		return fmt.Errorf("move SQLite data into etcd: %w", err)
	}
	return nil
}

// promoteThrough reaches the cluster's voting members, which alone can
// promote a learner.
func (s *etcdStore) promoteThrough() Backend {
	b := s.Backend()
	b.Endpoints = nil
	if s.member.Join != nil {
		b.Endpoints = append(b.Endpoints, s.member.Join.ClientURLs...)
	}
	for _, m := range s.e.Server.Cluster().Members() {
		if !m.IsLearner {
			b.Endpoints = append(b.Endpoints, m.ClientURLs...)
		}
	}
	slices.Sort(b.Endpoints)
	b.Endpoints = slices.Compact(b.Endpoints)
	return b
}

// Done and ExitErr report etcd stopping on its own (component.Exiter).
func (s *etcdStore) Done() <-chan struct{} { return s.done }
func (s *etcdStore) ExitErr() error        { return s.err }

func (s *etcdStore) Stop() error {
	if s.e == nil {
		return nil
	}
	s.stopping.Store(true)
	s.e.Close()
	return nil
}

// etcdClientTLS is the TLS configuration of an etcd client with b's files.
func etcdClientTLS(b Backend) (*tls.Config, error) {
	info := transport.TLSInfo{CertFile: b.CertFile, KeyFile: b.KeyFile, TrustedCAFile: b.CAFile}
	c, err := info.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("etcd client certificates: %w", err)
	}
	return c, nil
}

// Snapshot saves etcd's data through its snapshot API, from this member
// (a running server, possibly in another process). The file carries
// etcd's sha256 trailer, which restore checks.
func (s *etcdStore) Snapshot(ctx context.Context, path string) error {
	cfg, err := clientConfig(s.Backend())
	if err != nil {
		return err
	}
	// The snapshot's stream waits for the member however long ctx allows;
	// a member that does not answer at once is not running.
	if err := s.answers(ctx); err != nil {
		return err
	}
	err = fileutil.Replace(path, func(tmp string) error {
		_, err := snapshot.SaveWithVersion(ctx, zap.NewNop(), cfg, tmp)
		return err
	})
	if err != nil {
		return fmt.Errorf("snapshot etcd (%s) to %s: %w", s.localClientURL(), path, err)
	}
	return nil
}

// answers checks, within a few seconds, that the member serves.
func (s *etcdStore) answers(ctx context.Context) error {
	client, err := Client(ctx, s.Backend())
	if err != nil {
		return fmt.Errorf("embedded etcd at %s: %w", s.localClientURL(), err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := client.Status(ctx, s.localClientURL()); err != nil {
		return fmt.Errorf("embedded etcd at %s does not answer (is kubling server running? etcd snapshots are taken through it): %w", s.localClientURL(), err)
	}
	return nil
}
