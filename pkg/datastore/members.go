package datastore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// EtcdJoin is how a new server's member joins an existing embedded etcd
// cluster: it was added as a learner (AddLearner) and starts with the
// cluster's members as its initial cluster; once caught up it is promoted
// to a voting member (the datastore's Ready).
type EtcdJoin struct {
	// InitialCluster is name=peerURL for every member, this one included.
	InitialCluster string
	// ClientURLs are the existing members' client URLs, to promote
	// through.
	ClientURLs []string
}

// ErrBusy is a membership change refused for now (another server is
// joining); the caller asks again.
var ErrBusy = errors.New("another server is joining the etcd cluster; try again when it is done")

// ErrLastMember is a removal of the cluster's only member, which is never
// made.
var ErrLastMember = errors.New("the etcd cluster's last member")

// ErrMemberExists is a join by a name or address already in the cluster.
var ErrMemberExists = errors.New("already an etcd member")

// AddLearner adds a member called name, reached at peerURL, to the etcd
// cluster behind b, as a learner (it has no vote until promoted). A
// learner added earlier at the same URL that never started (a join cut
// short) is taken as it is.
func AddLearner(ctx context.Context, b Backend, name, peerURL string) (EtcdJoin, error) {
	client, list, err := members(ctx, b)
	if err != nil {
		return EtcdJoin{}, err
	}
	defer client.Close()
	var added, busy bool
	for _, m := range list.Members {
		switch {
		case slices.Contains(m.PeerURLs, peerURL) && m.Name == "":
			added = true // a join cut short
		case slices.Contains(m.PeerURLs, peerURL) || m.Name == name:
			return EtcdJoin{}, fmt.Errorf("%w: %q at %s is in the cluster: delete its Node (kubectl delete node %s) to remove it, then join again", ErrMemberExists, m.Name, strings.Join(m.PeerURLs, ","), m.Name)
		case m.Name == "":
			busy = true // another learner that has not started yet
		}
	}
	if busy && !added {
		return EtcdJoin{}, ErrBusy
	}
	if !added {
		resp, err := client.MemberAddAsLearner(ctx, []string{peerURL})
		if errors.Is(err, rpctypes.ErrTooManyLearners) || errors.Is(err, rpctypes.ErrGRPCTooManyLearners) {
			return EtcdJoin{}, ErrBusy
		} else if err != nil {
			return EtcdJoin{}, fmt.Errorf("add etcd member %s: %w", name, err)
		}
		list.Members = resp.Members
	}
	var j EtcdJoin
	var initial []string
	for _, m := range list.Members {
		n := m.Name
		if n == "" {
			n = name // the new member: it names itself when it starts
		} else {
			j.ClientURLs = append(j.ClientURLs, m.ClientURLs...)
		}
		for _, u := range m.PeerURLs {
			initial = append(initial, n+"="+u)
		}
	}
	j.InitialCluster = strings.Join(initial, ",")
	return j, nil
}

// promote makes the learner id a voting member, through the members at
// endpoints, as soon as it has caught up with the leader.
func promote(ctx context.Context, b Backend, id uint64) error {
	client, err := Client(ctx, b)
	if err != nil {
		return err
	}
	defer client.Close()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		// Not caught up yet, members unreachable, a leader election:
		// each is tried again, and the last named when time is up.
		_, err := client.MemberPromote(ctx, id)
		if err == nil || errors.Is(err, rpctypes.ErrMemberNotLearner) || errors.Is(err, rpctypes.ErrGRPCMemberNotLearner) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("promote this etcd member (a learner) to a voting member: %w (last: %v)", ctx.Err(), err)
		case <-tick.C:
		}
	}
}

// RemoveMember removes the etcd member called name, if there is one; it
// never removes the last member.
func RemoveMember(ctx context.Context, b Backend, name string) (bool, error) {
	client, list, err := members(ctx, b)
	if err != nil {
		return false, err
	}
	defer client.Close()
	i := slices.IndexFunc(list.Members, func(m *etcdserverpb.Member) bool { return m.Name == name })
	if i < 0 {
		return false, nil
	}
	if len(list.Members) == 1 {
		return false, fmt.Errorf("etcd member %s: %w; not removed", name, ErrLastMember)
	}
	if _, err := client.MemberRemove(ctx, list.Members[i].ID); err != nil {
		return false, fmt.Errorf("remove etcd member %s: %w", name, err)
	}
	return true, nil
}

// MemberNames are the names of the etcd cluster's started members.
func MemberNames(ctx context.Context, b Backend) ([]string, error) {
	client, list, err := members(ctx, b)
	if err != nil {
		return nil, err
	}
	defer client.Close()
	var names []string
	for _, m := range list.Members {
		if m.Name != "" {
			names = append(names, m.Name)
		}
	}
	return names, nil
}

// members opens a client on b and lists the etcd cluster's members; the
// caller closes the client.
func members(ctx context.Context, b Backend) (*clientv3.Client, *clientv3.MemberListResponse, error) {
	client, err := Client(ctx, b)
	if err != nil {
		return nil, nil, err
	}
	list, err := client.MemberList(ctx)
	if err != nil {
		client.Close()
		return nil, nil, fmt.Errorf("list etcd members: %w", err)
	}
	return client, list, nil
}
