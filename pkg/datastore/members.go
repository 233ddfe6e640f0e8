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
	// RemovedStale are the peer URLs of learners removed as stale first.
	RemovedStale []string
}

// ErrBusy is a membership change refused for now (another server is
// joining); the caller asks again.
var ErrBusy = errors.New("another server is joining the etcd cluster; try again when it is done")

// ErrLastMember is a removal of the cluster's only member, which is never
// made.
var ErrLastMember = errors.New("the etcd cluster's last member")

// ErrMemberExists is a join by a name or address already in the cluster.
var ErrMemberExists = errors.New("already an etcd member")

// StaleLearnerAfter is how long a learner may stay unstarted before the next
// server's join removes it: a join cut short whose server never came back
// (its disk died, it got another address) would else answer every later
// join with ErrBusy, forever. A started learner (one that has named itself)
// is never removed here.
const StaleLearnerAfter = 10 * time.Minute

// learnersPrefix keeps, per unstarted learner, when this cluster first knew
// of it (etcd's member list has no time).
const learnersPrefix = "/kubling/etcd-learners/"

func learnerKey(id uint64) string { return fmt.Sprintf("%s%016x", learnersPrefix, id) }

// AddLearner adds a member called name, reached at peerURL, to the etcd
// cluster behind b, as a learner (it has no vote until promoted). A
// learner added earlier at the same URL that never started (a join cut
// short) is taken as it is; another one unstarted for StaleLearnerAfter (by
// now) is removed first (EtcdJoin.RemovedStale names it).
func AddLearner(ctx context.Context, b Backend, name, peerURL string, now time.Time) (EtcdJoin, error) {
	client, list, err := members(ctx, b)
	if err != nil {
		return EtcdJoin{}, err
	}
	defer client.Close()
	since, err := learnerTimes(ctx, client, list, now)
	if err != nil {
		return EtcdJoin{}, err
	}
	var j EtcdJoin
	var added, busy bool
	kept := list.Members[:0:0]
	for _, m := range list.Members {
		switch {
		case slices.Contains(m.PeerURLs, peerURL) && m.Name == "":
			added = true // a join cut short
		case slices.Contains(m.PeerURLs, peerURL) || m.Name == name:
			return EtcdJoin{}, fmt.Errorf("%w: %q at %s is in the cluster: delete its Node (kubectl delete node %s) to remove it, then join again", ErrMemberExists, m.Name, strings.Join(m.PeerURLs, ","), m.Name)
		case m.Name == "" && now.Sub(since[m.ID]) >= StaleLearnerAfter:
			if _, err := client.MemberRemove(ctx, m.ID); err != nil {
				return EtcdJoin{}, fmt.Errorf("remove the etcd learner at %s, unstarted since %s: %w", strings.Join(m.PeerURLs, ","), since[m.ID].UTC().Format(time.RFC3339), err)
			}
			if _, err := client.Delete(ctx, learnerKey(m.ID)); err != nil {
				return EtcdJoin{}, fmt.Errorf("forget the removed etcd learner: %w", err)
			}
			j.RemovedStale = append(j.RemovedStale, strings.Join(m.PeerURLs, ","))
			continue
		case m.Name == "":
			busy = true // another learner that has not started yet
		}
		kept = append(kept, m)
	}
	list.Members = kept
	if busy && !added {
		return j, ErrBusy
	}
	if !added {
		resp, err := client.MemberAddAsLearner(ctx, []string{peerURL})
		if errors.Is(err, rpctypes.ErrTooManyLearners) || errors.Is(err, rpctypes.ErrGRPCTooManyLearners) {
			return j, ErrBusy
		} else if err != nil {
			return j, fmt.Errorf("add etcd member %s: %w", name, err)
		}
		if _, err := client.Put(ctx, learnerKey(resp.Member.ID), now.UTC().Format(time.RFC3339)); err != nil {
			return j, fmt.Errorf("record the new etcd learner: %w", err)
		}
		list.Members = resp.Members
	}
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

// learnerTimes says since when each unstarted learner has been known: its
// record, or now for one without (added by an earlier kubling, or its
// record lost), which is then recorded. Records of members that have
// started or gone are deleted.
func learnerTimes(ctx context.Context, client *clientv3.Client, list *clientv3.MemberListResponse, now time.Time) (map[uint64]time.Time, error) {
	resp, err := client.Get(ctx, learnersPrefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("read the etcd learners' records: %w", err)
	}
	recorded := map[string]string{}
	for _, kv := range resp.Kvs {
		recorded[string(kv.Key)] = string(kv.Value)
	}
	since := map[uint64]time.Time{}
	for _, m := range list.Members {
		if m.Name != "" {
			continue
		}
		key := learnerKey(m.ID)
		t, err := time.Parse(time.RFC3339, recorded[key])
		if err != nil {
			t = now
			if _, err := client.Put(ctx, key, now.UTC().Format(time.RFC3339)); err != nil {
				return nil, fmt.Errorf("record the etcd learner at %s: %w", strings.Join(m.PeerURLs, ","), err)
			}
		}
		since[m.ID] = t
		delete(recorded, key)
	}
	for key := range recorded {
		if _, err := client.Delete(ctx, key); err != nil {
			return nil, fmt.Errorf("forget an etcd learner's record: %w", err)
		}
	}
	return since, nil
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

// RemoveMember removes the etcd member called name (or, for a learner
// that has not named itself, of that hex ID), if there is one; it never
// removes the last member.
func RemoveMember(ctx context.Context, b Backend, name string) (bool, error) {
	client, list, err := members(ctx, b)
	if err != nil {
		return false, err
	}
	defer client.Close()
	i := slices.IndexFunc(list.Members, func(m *etcdserverpb.Member) bool { return m.Name == name })
	if i < 0 {
		i = slices.IndexFunc(list.Members, func(m *etcdserverpb.Member) bool { return fmt.Sprintf("%x", m.ID) == strings.ToLower(name) })
	}
	if i < 0 {
		return false, nil
	}
	if len(list.Members) == 1 {
		return false, fmt.Errorf("etcd member %s: %w; not removed", name, ErrLastMember)
	}
	if _, err := client.MemberRemove(ctx, list.Members[i].ID); err != nil {
		return false, fmt.Errorf("remove etcd member %s: %w", name, err)
	}
	if _, err := client.Delete(ctx, learnerKey(list.Members[i].ID)); err != nil {
		return true, fmt.Errorf("forget the removed etcd member's record: %w", err)
	}
	return true, nil
}

// Member is one etcd member, as `kubling etcd member ls` shows it.
type Member struct {
	ID       uint64
	Name     string // "" until it has started
	PeerURLs []string
	Learner  bool
	// Since is, for a learner not started yet, since when the cluster
	// has known of it (zero when it has no record).
	Since time.Time
}

// Members lists the etcd cluster's members in its order.
func Members(ctx context.Context, b Backend) ([]Member, error) {
	client, list, err := members(ctx, b)
	if err != nil {
		return nil, err
	}
	defer client.Close()
	out := make([]Member, 0, len(list.Members))
	for _, m := range list.Members {
		member := Member{ID: m.ID, Name: m.Name, PeerURLs: m.PeerURLs, Learner: m.IsLearner}
		if m.Name == "" {
			if resp, err := client.Get(ctx, learnerKey(m.ID)); err == nil && len(resp.Kvs) == 1 {
				member.Since, _ = time.Parse(time.RFC3339, string(resp.Kvs[0].Value))
			}
		}
		out = append(out, member)
	}
	return out, nil
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
