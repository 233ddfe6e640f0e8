package datastore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/kubling/kubling/pkg/datadir"
	"github.com/kubling/kubling/pkg/server/pki"
)

// etcdConfig is a --cluster-init configuration on l with real certificates
// from the server's PKI, on free ports (not 2379/2380, which a kubling on
// this machine may hold).
func etcdConfig(t *testing.T, l datadir.Layout) Config {
	t.Helper()
	sans := pki.SANs{DNSNames: []string{"localhost"}, IPs: []net.IP{net.ParseIP("127.0.0.1")}}
	p, _, err := pki.Ensure(pki.Options{Dir: l.ServerTLS(), APIServerSAN: sans, Etcd: true})
	if err != nil {
		t.Fatal(err)
	}
	return Config{Layout: l, ClusterInit: true, Etcd: EtcdMember{
		Name: "server-1", IP: "127.0.0.1", ClientPort: freePort(t), PeerPort: freePort(t),
		TLS: EtcdTLS{
			CAFile:     p.Cert(pki.EtcdCA),
			ServerCert: p.Cert(pki.EtcdServer), ServerKey: p.Key(pki.EtcdServer),
			PeerCert: p.Cert(pki.EtcdPeer), PeerKey: p.Key(pki.EtcdPeer),
			ClientCert: p.Cert(pki.EtcdClient), ClientKey: p.Key(pki.EtcdClient),
		},
	}}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startStore starts the kind c asks for and returns it with a client as
// the apiserver would have (over TLS for etcd), and a stop for both.
func startStore(t *testing.T, c Config) (Datastore, *clientv3.Client, func()) {
	t.Helper()
	store, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	before := store.Backend().Endpoints
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := store.Start(ctx); err != nil {
		t.Fatal(err)
	}
	var client *clientv3.Client
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		if client != nil {
			client.Close()
		}
		if err := store.Stop(); err != nil {
			t.Error(err)
		}
	}
	t.Cleanup(stop)
	if err := store.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	b := store.Backend()
	if len(before) != 1 || !slices.Equal(before, b.Endpoints) {
		t.Fatalf("Backend().Endpoints: %v after New, %v after Start", before, b.Endpoints)
	}
	if client, err = Client(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	return store, client, stop
}

// TestEtcdKeepsDataAcrossRestarts runs real etcd in the test's process, as
// kubling server --cluster-init does, and reaches it over mutual TLS.
func TestEtcdKeepsDataAcrossRestarts(t *testing.T) {
	l := datadir.New(t.TempDir())
	c := etcdConfig(t, l)
	store, client, stop := startStore(t, c)
	if _, ok := store.(*etcdStore); !ok {
		t.Fatalf("--cluster-init gave %T", store)
	}
	put(t, client, "value")
	stop()
	if !etcdHasData(l.EtcdDir()) {
		t.Fatalf("no etcd data under %s", l.EtcdDir())
	}
	// The next start needs no --cluster-init: the data dir holds etcd.
	c.ClusterInit = false
	if KindOf(c) != KindEtcd {
		t.Fatalf("KindOf a data dir with etcd = %q", KindOf(c))
	}
	_, client, _ = startStore(t, c)
	if got := get(t, client); got != "value" {
		t.Fatalf("after restart: got %q", got)
	}
}

// TestEtcdRefusesClientsWithoutItsCertificate: the listener trusts only the
// etcd CA.
func TestEtcdRefusesClientsWithoutItsCertificate(t *testing.T) {
	l := datadir.New(t.TempDir())
	c := etcdConfig(t, l)
	store, _, _ := startStore(t, c)
	b := store.Backend()
	b.CertFile, b.KeyFile = "", ""
	tlsConfig, err := etcdClientTLS(b)
	if err != nil {
		t.Fatal(err)
	}
	client, err := clientv3.New(clientv3.Config{Endpoints: b.Endpoints, TLS: tlsConfig, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if _, err := client.Get(ctx, testKey); err == nil {
		t.Fatal("a client without a certificate read from etcd")
	}
}

// TestSQLiteMovesIntoEtcd: a server that ran on SQLite and starts with
// --cluster-init finds every key in etcd, and the database kept aside.
func TestSQLiteMovesIntoEtcd(t *testing.T) {
	l := datadir.New(t.TempDir())
	_, client, stop := startSQLite(t, l)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const n = 1234 // more than one page
	for i := range n {
		if _, err := client.Put(ctx, keyN(i), "v"+keyN(i)); err != nil {
			t.Fatal(err)
		}
	}
	lease, err := client.Grant(ctx, 3600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Put(ctx, "/registry/events/e1", "short-lived", clientv3.WithLease(lease.ID)); err != nil {
		t.Fatal(err)
	}
	stop()

	_, client, stop = startStore(t, etcdConfig(t, l))
	resp, err := client.Get(ctx, "/registry/test/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != n {
		t.Fatalf("etcd holds %d of the %d keys", len(resp.Kvs), n)
	}
	for _, kv := range resp.Kvs {
		if string(kv.Value) != "v"+string(kv.Key) {
			t.Fatalf("%s = %q", kv.Key, kv.Value)
		}
	}
	if resp, err := client.Get(ctx, "/registry/events/e1"); err != nil || len(resp.Kvs) != 0 {
		t.Errorf("a key with a lease was moved (%v, %v)", resp, err)
	}
	if fileExists(l.SQLiteDB()) || !fileExists(migratedName(l.SQLiteDB())) {
		t.Errorf("the SQLite database was not kept aside as %s", migratedName(l.SQLiteDB()))
	}
	// Moved once: a key changed in etcd stays changed after a restart.
	if _, err := client.Put(ctx, keyN(0), "changed"); err != nil {
		t.Fatal(err)
	}
	stop()
	_, client, _ = startStore(t, etcdConfig(t, l))
	if resp, err := client.Get(ctx, keyN(0)); err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "changed" {
		t.Fatalf("after restart %s = %v, %v; want changed", keyN(0), resp, err)
	}
}

func keyN(i int) string { return fmt.Sprintf("/registry/test/%05d", i) }

// embedded is a fresh data dir and the configuration of an embedded kind
// on it.
func embedded(t *testing.T, kind Kind) (datadir.Layout, Config) {
	t.Helper()
	l := datadir.New(t.TempDir())
	if kind == KindEtcd {
		return l, etcdConfig(t, l)
	}
	return l, Config{Layout: l}
}

// TestSnapshotRoundTrip saves a snapshot of each embedded kind while it
// serves, writes after it, restores it into the data dir and finds the
// data as it was at the snapshot.
func TestSnapshotRoundTrip(t *testing.T) {
	for _, kind := range []Kind{KindSQLite, KindEtcd} {
		t.Run(string(kind), func(t *testing.T) {
			_, c := embedded(t, kind)
			store, client, stop := startStore(t, c)
			put(t, client, "before")
			snap := filepath.Join(t.TempDir(), "snap")
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := store.(Snapshotter).Snapshot(ctx, snap); err != nil {
				t.Fatal(err)
			}
			put(t, client, "after")
			stop()

			info, err := ReadSnapshotInfo(snap)
			if err != nil || info.Kind != kind || info.Compressed {
				t.Fatalf("ReadSnapshotInfo = %+v, %v; want %s", info, err, kind)
			}
			r, err := Restore(c, snap)
			if err != nil {
				t.Fatal(err)
			}
			if r.Kind != kind || len(r.Kept) == 0 {
				t.Fatalf("Restore = %+v: want the former data kept", r)
			}
			for _, p := range r.Kept {
				if !fileExists(p) {
					t.Errorf("former data %s is gone", p)
				}
			}
			c.ClusterInit = false
			_, client, _ = startStore(t, c)
			if got := get(t, client); got != "before" {
				t.Fatalf("after restore: got %q, want before", got)
			}
		})
	}
}

// TestRestoreRefusesBrokenSnapshots: nothing is touched for a truncated,
// corrupted or foreign file.
func TestRestoreRefusesBrokenSnapshots(t *testing.T) {
	for _, kind := range []Kind{KindSQLite, KindEtcd} {
		t.Run(string(kind), func(t *testing.T) {
			l, c := embedded(t, kind)
			store, client, stop := startStore(t, c)
			for i := range 200 {
				if _, err := client.Put(context.Background(), keyN(i), strings.Repeat("x", 1000)); err != nil {
					t.Fatal(err)
				}
			}
			snap := filepath.Join(t.TempDir(), "snap")
			if err := store.(Snapshotter).Snapshot(context.Background(), snap); err != nil {
				t.Fatal(err)
			}
			stop()
			whole, err := os.ReadFile(snap)
			if err != nil {
				t.Fatal(err)
			}
			flipped := append([]byte(nil), whole...)
			flipped[len(flipped)/2] ^= 0xff
			flipped[len(flipped)/2+4096] ^= 0xff
			bad := map[string][]byte{
				"truncated": whole[:len(whole)*2/3],
				"foreign":   []byte("not a snapshot at all, just some text in a file"),
			}
			if kind == KindEtcd {
				// Only etcd's snapshots carry a digest; SQLite has no
				// checksum of its pages to catch flipped bytes in a
				// value (docs/datastores.md).
				bad["flipped"] = flipped
			}
			for name, content := range bad {
				bad := filepath.Join(t.TempDir(), name)
				if err := os.WriteFile(bad, content, 0o600); err != nil {
					t.Fatal(err)
				}
				before := tree(t, l.Root)
				_, err := Restore(c, bad)
				if err == nil {
					t.Errorf("%s: restored", name)
					continue
				}
				if strings.Contains(err.Error(), "\n") {
					t.Errorf("%s: error is more than one line: %q", name, err)
				}
				if after := tree(t, l.Root); after != before {
					t.Errorf("%s: the data dir changed:\n%s\nbecame\n%s", name, before, after)
				}
			}
		})
	}
}

// tree lists the files under dir with their sizes.
func tree(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		b.WriteString(p)
		if !info.IsDir() {
			fmt.Fprintf(&b, " %d", info.Size())
		}
		b.WriteString("\n")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestNewRejects(t *testing.T) {
	l := datadir.New(t.TempDir())
	missing := filepath.Join(t.TempDir(), "missing.crt")
	for _, tc := range []struct {
		name string
		c    Config
		want string
	}{
		{"cluster-init with endpoint", Config{Layout: l, ClusterInit: true, Endpoint: "postgres://u:secret@db/k"}, "--cluster-init runs etcd inside kubling"},
		{"unknown scheme", Config{Layout: l, Endpoint: "redis://x"}, `unsupported scheme "redis"`},
		{"bad cafile", Config{Layout: l, Endpoint: "https://10.0.0.1:2379", TLS: TLSFiles{CAFile: missing}}, "--datastore-cafile"},
		{"cert without key", Config{Layout: l, Endpoint: "https://10.0.0.1:2379", TLS: TLSFiles{CertFile: "/etc/hostname"}}, "go together"},
		{"tls on sqlite", Config{Layout: l, TLS: TLSFiles{CAFile: "/etc/hostname"}}, "are for an external datastore"},
		{"reset without etcd", Config{Layout: l, Etcd: EtcdMember{Reset: true}}, "--cluster-reset: this data dir holds no embedded etcd member"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.c)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("the error shows the password: %v", err)
			}
		})
	}
	if entries, _ := os.ReadDir(l.Root); len(entries) != 0 {
		t.Errorf("New wrote into the data dir: %v", entries)
	}
}

// TestReadStopped reads kubling's own key from each embedded kind's files
// with the datastore stopped, as a restore on a new machine does; a
// deleted key reads as absent.
func TestReadStopped(t *testing.T) {
	for _, kind := range []Kind{KindSQLite, KindEtcd} {
		t.Run(string(kind), func(t *testing.T) {
			_, c := embedded(t, kind)
			store, _, stop := startStore(t, c)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			kv, err := OpenKV(ctx, store.Backend())
			if err != nil {
				t.Fatal(err)
			}
			defer kv.Close()
			for _, v := range []string{"first", "second"} {
				swapKey(ctx, t, kv, "/kubling/test", v)
			}
			swapKey(ctx, t, kv, "/kubling/gone", "x")
			client, err := Client(ctx, store.Backend())
			if err != nil {
				t.Fatal(err)
			}
			// Deleted as the apiserver deletes (kine has no plain Delete).
			resp, err := client.Get(ctx, "/kubling/gone")
			if err != nil {
				t.Fatal(err)
			}
			del, err := client.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision("/kubling/gone"), "=", resp.Kvs[0].ModRevision)).
				Then(clientv3.OpDelete("/kubling/gone")).Else(clientv3.OpGet("/kubling/gone")).Commit()
			if err != nil || !del.Succeeded {
				t.Fatalf("delete: %v %v", del, err)
			}
			client.Close()
			if v, ok, err := Get(ctx, store.Backend(), "/kubling/test"); err != nil || !ok || string(v) != "second" {
				t.Fatalf("Get = %q, %v, %v", v, ok, err)
			}
			stop()
			c.ClusterInit = false
			if v, ok, err := ReadStopped(c, "/kubling/test"); err != nil || !ok || string(v) != "second" {
				t.Errorf("ReadStopped = %q, %v, %v; want the latest value", v, ok, err)
			}
			if _, ok, err := ReadStopped(c, "/kubling/gone"); err != nil || ok {
				t.Errorf("deleted key: found %v, %v", ok, err)
			}
			if _, ok, err := ReadStopped(c, "/kubling/never"); err != nil || ok {
				t.Errorf("absent key: found %v, %v", ok, err)
			}
		})
	}
}

// TestRestoreUndo: a restore taken back leaves the data dir as it was.
func TestRestoreUndo(t *testing.T) {
	_, c := embedded(t, KindSQLite)
	store, client, stop := startStore(t, c)
	put(t, client, "mine")
	snap := filepath.Join(t.TempDir(), "snap")
	if err := store.(Snapshotter).Snapshot(context.Background(), snap); err != nil {
		t.Fatal(err)
	}
	stop()
	before := tree(t, c.Layout.Root)
	r, err := Restore(c, snap)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Undo(); err != nil {
		t.Fatal(err)
	}
	if after := tree(t, c.Layout.Root); after != before {
		t.Errorf("after Undo the data dir is\n%s\nnot\n%s", after, before)
	}
}

// TestClusterResetIsOneShot: a finished --cluster-reset is recorded, and
// the flag is refused afterwards (left in a config file it would make a
// cluster of one again at every start, dropping servers joined since); a
// restore clears the record, so the next quorum loss can be reset.
func TestClusterResetIsOneShot(t *testing.T) {
	_, c := embedded(t, KindEtcd)
	_, client, stop := startStore(t, c)
	put(t, client, "kept")
	stop()

	c.ClusterInit = false
	c.Etcd.Reset = true
	_, client, stop = startStore(t, c)
	if got := get(t, client); got != "kept" {
		t.Errorf("after the reset: %q", got)
	}
	snap := filepath.Join(t.TempDir(), "snap")
	stop()
	if _, err := New(c); err == nil || !strings.Contains(err.Error(), "already reset") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("a second --cluster-reset: %v", err)
	}
	c.Etcd.Reset = false
	store, client, stop := startStore(t, c)
	if got := get(t, client); got != "kept" {
		t.Errorf("a plain start after the reset: %q", got)
	}
	if err := store.(Snapshotter).Snapshot(context.Background(), snap); err != nil {
		t.Fatal(err)
	}
	stop()
	if _, err := Restore(c, snap); err != nil {
		t.Fatal(err)
	}
	c.Etcd.Reset = true
	if _, err := New(c); err != nil {
		t.Errorf("--cluster-reset after a restore: %v", err)
	}
}

// TestRestoreReadsTheSnapshotOnce: the user's file is read once, and what
// was checked is what is restored. A named pipe gives its bytes once (as a
// file replaced after its check would give other bytes the second time).
func TestRestoreReadsTheSnapshotOnce(t *testing.T) {
	_, c := embedded(t, KindSQLite)
	store, client, stop := startStore(t, c)
	put(t, client, "piped")
	snap := filepath.Join(t.TempDir(), "snap")
	if err := store.(Snapshotter).Snapshot(context.Background(), snap); err != nil {
		t.Fatal(err)
	}
	stop()
	data, err := os.ReadFile(snap)
	if err != nil {
		t.Fatal(err)
	}
	pipe := filepath.Join(t.TempDir(), "snap.pipe")
	if err := syscall.Mkfifo(pipe, 0o600); err != nil {
		t.Fatal(err)
	}
	go func() {
		f, err := os.OpenFile(pipe, os.O_WRONLY, 0)
		if err != nil {
			return
		}
		f.Write(data)
		f.Close()
	}()
	if _, err := Restore(c, pipe); err != nil {
		t.Fatal(err)
	}
	_, client, _ = startStore(t, c)
	if got := get(t, client); got != "piped" {
		t.Fatalf("after restore: got %q, want piped", got)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(c.Layout.SQLiteDB()), ".restore-*")); len(left) > 0 {
		t.Errorf("copies left: %v", left)
	}
}

// TestEtcdMemberJoinsAndLeaves: a second member is added as a learner
// (AddLearner, as the server answering `kubling server --server` does),
// starts with the cluster's members, is promoted by its own Ready, serves
// the first member's data, and is removed again (RemoveMember, as a deleted
// Node does).
func TestEtcdMemberJoinsAndLeaves(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c1 := etcdConfig(t, datadir.New(t.TempDir()))
	store1, client1, _ := startStore(t, c1)
	put(t, client1, "before the join")

	c2 := c1
	c2.Layout = datadir.New(t.TempDir())
	c2.Etcd.Name, c2.Etcd.ClientPort, c2.Etcd.PeerPort = "server-2", freePort(t), freePort(t)
	j, err := AddLearner(ctx, store1.Backend(), "server-2", c2.Etcd.PeerURL(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	// Asked again (a join cut short), the same learner is handed back.
	again, err := AddLearner(ctx, store1.Backend(), "server-2", c2.Etcd.PeerURL(), time.Now())
	if err != nil || again.InitialCluster != j.InitialCluster {
		t.Fatalf("second AddLearner: %+v %v, first %+v", again, err, j)
	}
	if _, err := AddLearner(ctx, store1.Backend(), "server-3", "https://127.0.0.1:1", time.Now()); !errors.Is(err, ErrBusy) {
		t.Fatalf("a join while another is under way: %v, want ErrBusy", err)
	}
	if _, err := AddLearner(ctx, store1.Backend(), "server-1", "https://127.0.0.1:2", time.Now()); !errors.Is(err, ErrMemberExists) {
		t.Fatalf("a join by a member's name: %v, want ErrMemberExists", err)
	}
	want := []string{"server-1=" + c1.Etcd.PeerURL(), "server-2=" + c2.Etcd.PeerURL()}
	got := strings.Split(j.InitialCluster, ",")
	slices.Sort(got)
	if !slices.Equal(got, want) || len(j.ClientURLs) != 1 {
		t.Fatalf("join: %+v, want initial cluster %s and one client URL", j, want)
	}

	c2.Etcd.Join = &j
	store2, client2, _ := startStore(t, c2) // Ready promotes it
	if names, err := MemberNames(ctx, store1.Backend()); err != nil || !slices.Equal(names, []string{"server-1", "server-2"}) && !slices.Equal(names, []string{"server-2", "server-1"}) {
		t.Fatalf("MemberNames: %v %v", names, err)
	}
	list, err := client1.MemberList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Members) != 2 || list.Members[0].IsLearner || list.Members[1].IsLearner {
		t.Fatalf("members after the join: %v", list.Members)
	}
	if got := get(t, client2); got != "before the join" {
		t.Fatalf("the new member serves %q", got)
	}

	// etcd refuses to remove a voting member until the others have been
	// connected a while (5 s): "unhealthy cluster".
	var removed bool
	for try := 0; try < 30; try++ {
		if removed, err = RemoveMember(ctx, store1.Backend(), "server-2"); err == nil || !strings.Contains(err.Error(), "unhealthy cluster") {
			break
		}
		time.Sleep(time.Second)
	}
	if err != nil || !removed {
		t.Fatalf("RemoveMember: %v %v", removed, err)
	}
	select {
	case <-store2.(*etcdStore).Done():
	case <-ctx.Done():
		t.Fatal("the removed member still runs")
	}
	if list, err = client1.MemberList(ctx); err != nil || len(list.Members) != 1 {
		t.Fatalf("members after the removal: %v %v", list, err)
	}
	if removed, err := RemoveMember(ctx, store1.Backend(), "server-2"); err != nil || removed {
		t.Fatalf("removing a member no longer there: %v %v", removed, err)
	}
	if _, err := RemoveMember(ctx, store1.Backend(), "server-1"); !errors.Is(err, ErrLastMember) {
		t.Fatalf("removing the last member: %v, want ErrLastMember", err)
	}
}

// TestSwap: Swap writes a key only over the revision it was given, on kine
// (its create and update transactions) and on etcd: of two servers storing
// the cluster keys at once, one wins and the other reads the winner's.
func TestSwap(t *testing.T) {
	for _, kind := range []Kind{KindSQLite, KindEtcd} {
		t.Run(string(kind), func(t *testing.T) {
			_, c := embedded(t, kind)
			store, _, stop := startStore(t, c)
			defer stop()
			ctx := context.Background()
			kv, err := OpenKV(ctx, store.Backend())
			if err != nil {
				t.Fatal(err)
			}
			defer kv.Close()
			const key = "/kubling/once"
			for i, want := range []bool{true, false} {
				swapped, err := kv.Swap(ctx, key, []byte(fmt.Sprintf("writer-%d", i)), 0)
				if err != nil || swapped != want {
					t.Fatalf("create %d: swapped %v, %v; want %v", i, swapped, err, want)
				}
			}
			v, rev, err := kv.Get(ctx, key)
			if err != nil || string(v) != "writer-0" || rev == 0 {
				t.Fatalf("stored %q at %d, %v; want the first writer's", v, rev, err)
			}
			// An update over the revision read wins once; a second over the
			// same (now stale) revision loses.
			for i, want := range []bool{true, false} {
				swapped, err := kv.Swap(ctx, key, []byte(fmt.Sprintf("update-%d", i)), rev)
				if err != nil || swapped != want {
					t.Fatalf("update %d over revision %d: swapped %v, %v; want %v", i, rev, swapped, err, want)
				}
			}
			if v, _, err := Get(ctx, store.Backend(), key); err != nil || string(v) != "update-0" {
				t.Errorf("stored %q, %v; want the first update's", v, err)
			}
		})
	}
}

// swapKey writes value over whatever key holds.
func swapKey(ctx context.Context, t *testing.T, kv *KV, key, value string) {
	t.Helper()
	_, rev, err := kv.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if swapped, err := kv.Swap(ctx, key, []byte(value), rev); err != nil || !swapped {
		t.Fatalf("write %s: swapped %v, %v", key, swapped, err)
	}
}

// TestStaleLearnerIsRemoved: a learner that never started blocks joins
// (ErrBusy) only until StaleLearnerAfter; then the next join removes it and
// goes on. One without a record (an earlier kubling's) is timed from when
// it is first seen. An unstarted learner is removed by its hex ID.
func TestStaleLearnerIsRemoved(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := etcdConfig(t, datadir.New(t.TempDir()))
	store, client, _ := startStore(t, c)
	b := store.Backend()
	t0 := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	const urlA, urlB, urlC = "https://127.0.0.1:1", "https://127.0.0.1:2", "https://127.0.0.1:3"
	if _, err := AddLearner(ctx, b, "server-2", urlA, t0); err != nil {
		t.Fatal(err)
	}
	if _, err := AddLearner(ctx, b, "server-3", urlB, t0.Add(StaleLearnerAfter-time.Second)); !errors.Is(err, ErrBusy) {
		t.Fatalf("a join while the learner is young: %v, want ErrBusy", err)
	}
	j, err := AddLearner(ctx, b, "server-3", urlB, t0.Add(StaleLearnerAfter))
	if err != nil || !slices.Equal(j.RemovedStale, []string{urlA}) || strings.Contains(j.InitialCluster, urlA) {
		t.Fatalf("a join after the learner went stale: %+v, %v", j, err)
	}
	members, err := Members(ctx, b)
	if err != nil || len(members) != 2 {
		t.Fatalf("members after: %+v, %v", members, err)
	}
	learner := members[slices.IndexFunc(members, func(m Member) bool { return m.Name == "" })]
	if learner.PeerURLs[0] != urlB || !learner.Learner || !learner.Since.Equal(t0.Add(StaleLearnerAfter)) {
		t.Fatalf("the new learner: %+v", learner)
	}

	// Without a record (lost, or an earlier kubling's): timed from now.
	if _, err := client.Delete(ctx, learnerKey(learner.ID)); err != nil {
		t.Fatal(err)
	}
	t1 := t0.Add(time.Hour)
	if _, err := AddLearner(ctx, b, "server-4", urlC, t1); !errors.Is(err, ErrBusy) {
		t.Fatalf("first seen without a record: %v, want ErrBusy", err)
	}
	if _, err := AddLearner(ctx, b, "server-4", urlC, t1.Add(StaleLearnerAfter-time.Second)); !errors.Is(err, ErrBusy) {
		t.Fatalf("without a record, before its time: %v, want ErrBusy", err)
	}

	// kubling etcd member remove <hex ID>: the unstarted learner goes, its
	// record with it.
	removed, err := RemoveMember(ctx, b, fmt.Sprintf("%x", learner.ID))
	if err != nil || !removed {
		t.Fatalf("remove by ID: %v %v", removed, err)
	}
	if members, _ := Members(ctx, b); len(members) != 1 {
		t.Fatalf("members after the removal: %+v", members)
	}
	if resp, err := client.Get(ctx, learnersPrefix, clientv3.WithPrefix()); err != nil || len(resp.Kvs) != 0 {
		t.Fatalf("records left: %v %v", resp, err)
	}
}
