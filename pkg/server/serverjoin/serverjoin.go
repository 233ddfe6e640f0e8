// Package serverjoin is both ends of a server joining a cluster on embedded
// etcd (`kubling server --server URL --token T`). The new server fetches
// the cluster CA and checks it against the token's hash, as an agent does; then, with the server token, it asks to
// join. The server it asks adds the new server's etcd member as a learner
// and answers with the cluster's keys, still sealed with the token's secret
// as the datastore keeps them (pkg/server/bootstrapdata), and the etcd
// members to start with. The new server opens the keys with its token,
// issues its own certificates from the cluster's CAs, starts its etcd
// member, and has it promoted to a voting member once it has caught up.
//
// Ask is the joining end; Service, served on the apiserver's port at
// join.ServerJoinPath, is the answering one.
package serverjoin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/kubling/kubling/pkg/config"
	"github.com/kubling/kubling/pkg/datadir"
	"github.com/kubling/kubling/pkg/datastore"
	"github.com/kubling/kubling/pkg/join"
	"github.com/kubling/kubling/pkg/retry"
	"github.com/kubling/kubling/pkg/server/bootstrapdata"
)

// Service is the answering end: with the server token only, it adds the
// new server's etcd member as a learner and answers with the cluster's
// sealed keys and the etcd members.
type Service struct {
	Backend datastore.Backend
	Kind    datastore.Kind
	Cluster config.Cluster
	// TokenID is the id of the server token's bootstrap token, now (a
	// rotation changes it while running): only that token joins servers (an
	// agent's join token is refused).
	TokenID func() string
	Log     klog.Logger

	// mu: one membership change at a time from this server.
	mu sync.Mutex
	// answer replaces s.join in tests of the HTTP end.
	answer func(ctx context.Context, req join.ServerRequest) (*join.ServerResponse, int, error)
}

// join adds the new server's member and answers, or says with an HTTP
// status why not.
func (j *Service) join(ctx context.Context, req join.ServerRequest) (*join.ServerResponse, int, error) {
	if j.Kind != datastore.KindEtcd {
		return nil, http.StatusConflict, fmt.Errorf("this cluster keeps its state in an external datastore (%s), not embedded etcd: start the new server with the same --datastore-endpoint and --token, without --server", j.Kind)
	}
	if err := j.Cluster.CheckSame(req.Cluster); err != nil {
		return nil, http.StatusConflict, err
	}
	blob, found, err := datastore.Get(ctx, j.Backend, bootstrapdata.Key)
	if err != nil {
		return nil, http.StatusInternalServerError, err
	}
	if !found {
		return nil, http.StatusServiceUnavailable, errors.New("the cluster keys are not in the datastore yet")
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	member, err := datastore.AddLearner(ctx, j.Backend, req.NodeName, req.EtcdPeerURL, time.Now())
	for _, peer := range member.RemovedStale {
		j.Log.Info("Removed an etcd learner that never started (a server join cut short)", "peerURL", peer, "unstartedFor", ">"+datastore.StaleLearnerAfter.String())
	}
	switch {
	case errors.Is(err, datastore.ErrBusy):
		return nil, http.StatusServiceUnavailable, err
	case errors.Is(err, datastore.ErrMemberExists):
		return nil, http.StatusConflict, err
	case err != nil:
		return nil, http.StatusInternalServerError, err
	}
	return &join.ServerResponse{BootstrapData: blob, Cluster: j.Cluster.Join(),
		Etcd: join.EtcdCluster{InitialCluster: member.InitialCluster, ClientURLs: member.ClientURLs}}, http.StatusOK, nil
}

// Ask is the joining end: it asks the server at --server to add this one,
// writes the cluster's keys and the token file, and returns how this
// server's etcd member joins. It waits for that server until kubling is
// stopped (servers of a site boot in no order, and one busy adding another
// member answers "try again"); a refusal no retry mends ends it.
func Ask(ctx context.Context, c *config.Server, l datadir.Layout, member datastore.EtcdMember, log klog.Logger) (*datastore.EtcdJoin, error) {
	return ask(ctx, clock.RealClock{}, c, l, member, log)
}

func ask(ctx context.Context, clk clock.Clock, c *config.Server, l datadir.Layout, member datastore.EtcdMember, log klog.Logger) (*datastore.EtcdJoin, error) {
	server, err := join.ServerURL(c.JoinURL)
	if err != nil {
		return nil, err
	}
	t, _ := c.ParsedToken() // --server needs --token (config.Server.Validate)
	id, secret := t.Bootstrap()
	req := join.ServerRequest{NodeName: c.NodeName, EtcdPeerURL: member.PeerURL(), Cluster: c.Cluster().Join()}
	var resp *join.ServerResponse
	refusals := 0
	err = retry.Until(ctx, clk, retry.Backoff(15*time.Second), func(ctx context.Context) error {
		ca, err := join.FetchCA(ctx, server, t, nil)
		if err == nil {
			if resp, err = join.PostServer(ctx, server, ca, id+"."+secret, req); err == nil {
				return nil
			}
		}
		if join.IsAuthRefusal(err) && refusals < 3 {
			refusals++ // the server may have started a moment ago
		} else if join.IsPermanent(err) {
			return retry.Permanent(err)
		}
		return err
	}, func(err error, attempts int) {
		log.Info("Cannot join the cluster yet; retrying until it answers", "server", server.String(), "attempt", attempts, "err", err.Error())
	})
	if err != nil {
		return nil, fmt.Errorf("join %s as a server: %w", server, err)
	}
	if _, err := bootstrapdata.Install(l, resp.BootstrapData, t); err != nil {
		return nil, fmt.Errorf("the cluster keys from %s: %w", server, err)
	}
	log.Info("Joined the cluster as a server; starting etcd as a learner", "server", server.String(), "etcdMembers", resp.Etcd.InitialCluster)
	return &datastore.EtcdJoin{InitialCluster: resp.Etcd.InitialCluster, ClientURLs: resp.Etcd.ClientURLs}, nil
}
