package datastore

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/kubling/kubling/pkg/retry"
)

// externalEtcd is an etcd cluster kubling does not run: the apiserver talks
// to its endpoints directly, with Config.TLS. Start checks that it answers,
// retrying with a growing pause, so a server never starts half-way on a
// datastore it cannot reach. Backups are the cluster's own tools' job.
type externalEtcd struct {
	endpoints []string
	tls       TLSFiles
	log       klog.Logger
	clock     clock.Clock
}

var _ Datastore = (*externalEtcd)(nil)

func newExternalEtcd(c Config) (*externalEtcd, error) {
	s := &externalEtcd{tls: c.TLS, log: c.Log, clock: clock.RealClock{}}
	for _, e := range strings.Split(c.Endpoint, ",") {
		u, err := url.Parse(strings.TrimSpace(e))
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			return nil, fmt.Errorf("--datastore-endpoint: %q is not an etcd endpoint (https://host:2379, comma-separated for several)", redact(e))
		}
		if u.User != nil {
			return nil, fmt.Errorf("--datastore-endpoint %s: etcd takes client certificates (--datastore-certfile, --datastore-keyfile), not a user in the URL", redact(e))
		}
		s.endpoints = append(s.endpoints, u.Scheme+"://"+u.Host)
		if u.Scheme == "http" {
			// Allowed (a test cluster, a loopback etcd), but never silently.
			s.log.Info("Warning: external etcd over plain http: every object and Secret crosses the network unencrypted and unauthenticated; use https:// with --datastore-cafile, --datastore-certfile and --datastore-keyfile", "endpoint", s.endpoints[len(s.endpoints)-1])
		}
	}
	return s, nil
}

func (s *externalEtcd) Name() string { return "datastore" }

func (s *externalEtcd) Backend() Backend {
	return Backend{Endpoints: s.endpoints, CAFile: s.tls.CAFile, CertFile: s.tls.CertFile, KeyFile: s.tls.KeyFile}
}

func (s *externalEtcd) Start(context.Context) error { return nil }

// Ready asks the cluster for its status until one endpoint answers or
// kubling is stopped, pausing 1 s, 2 s, 4 s… (then 30 s each time) between
// tries and logging each new reason once.
func (s *externalEtcd) Ready(ctx context.Context) error {
	err := retry.Until(ctx, s.clock, retry.Backoff(30*time.Second), s.status, func(err error, attempts int) {
		s.log.Info("External etcd not reachable yet; retrying until it is", "endpoints", s.endpoints, "attempt", attempts, "err", err.Error())
	})
	if err != nil {
		return fmt.Errorf("etcd at %s: %w", strings.Join(s.endpoints, ","), err)
	}
	return nil
}

// status asks every endpoint for its status; one answer is enough.
func (s *externalEtcd) status(ctx context.Context) error {
	client, err := Client(ctx, s.Backend())
	if err != nil {
		return err
	}
	defer client.Close()
	var errs []string
	for _, e := range s.endpoints {
		c, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := client.Status(c, e)
		cancel()
		if err == nil {
			return nil
		}
		errs = append(errs, e+": "+err.Error())
	}
	return errors.New(strings.Join(errs, "; "))
}

func (s *externalEtcd) Stop() error { return nil }
