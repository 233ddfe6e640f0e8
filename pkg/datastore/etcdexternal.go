package datastore

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/klog/v2"
)

// externalEtcd is an etcd cluster kubling does not run: the apiserver talks
// to its endpoints directly, with Config.TLS. Start checks that it answers,
// retrying with a growing pause, so a server never starts half-way on a
// datastore it cannot reach. Backups are the cluster's own tools' job.
type externalEtcd struct {
	endpoints []string
	tls       TLSFiles
	log       klog.Logger
}

var _ Datastore = (*externalEtcd)(nil)

func newExternalEtcd(c Config) (*externalEtcd, error) {
	s := &externalEtcd{tls: c.TLS, log: c.Log}
	for _, e := range strings.Split(c.Endpoint, ",") {
		u, err := url.Parse(strings.TrimSpace(e))
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			return nil, fmt.Errorf("--datastore-endpoint: %q is not an etcd endpoint (https://host:2379, comma-separated for several)", redact(e))
		}
		if u.User != nil {
			return nil, fmt.Errorf("--datastore-endpoint %s: etcd takes client certificates (--datastore-certfile, --datastore-keyfile), not a user in the URL", redact(e))
		}
		s.endpoints = append(s.endpoints, u.Scheme+"://"+u.Host)
	}
	return s, nil
}

func (s *externalEtcd) Name() string { return "datastore" }

func (s *externalEtcd) Backend() Backend {
	return Backend{Endpoints: s.endpoints, CAFile: s.tls.CAFile, CertFile: s.tls.CertFile, KeyFile: s.tls.KeyFile}
}

func (s *externalEtcd) Start(context.Context) error { return nil }

// Ready asks the cluster for its status until one endpoint answers, pausing
// 1 s, 2 s, 4 s… (at most 30 s) between tries and logging each failure.
func (s *externalEtcd) Ready(ctx context.Context) error {
	backoff := wait.Backoff{Duration: time.Second, Factor: 2, Steps: 1 << 30, Cap: 30 * time.Second}
	var last error
	err := wait.ExponentialBackoffWithContext(ctx, backoff, func(ctx context.Context) (bool, error) {
		last = s.status(ctx)
		if last == nil {
			return true, nil
		}
		s.log.Info("External etcd not reachable yet; retrying", "endpoints", s.endpoints, "err", last.Error())
		return false, nil
	})
	if err != nil && last != nil {
		return fmt.Errorf("etcd at %s: %w", strings.Join(s.endpoints, ","), last)
	}
	return err
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
