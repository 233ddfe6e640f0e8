//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestDatastores is issue 13's single-server path: a SQLite server moves
// into embedded etcd with --cluster-init keeping every object; snapshots of
// both kinds are saved while serving, on demand and on a schedule;
// restoring either brings back exactly what the snapshot held; a broken
// snapshot is refused with one line and nothing touched.
func TestDatastores(t *testing.T) {
	s := newServer(t)
	dbDir := filepath.Join(s.dataDir, "server", "db")
	snapDir := filepath.Join(dbDir, "snapshots")
	configmap := func(name string) string {
		out, err := s.tryKubectl("get", "configmap", name, "-n", "e2e", "-o", "jsonpath={.data.k}")
		if err != nil {
			return "<none>"
		}
		return out
	}
	want := func(when string, present map[string]bool) {
		t.Helper()
		for name, here := range present {
			got := configmap(name)
			if here && got != "v-"+name {
				t.Errorf("%s: configmap %s = %q, want v-%s", when, name, got, name)
			}
			if !here && got != "<none>" {
				t.Errorf("%s: configmap %s is there (%q), want it gone", when, name, got)
			}
		}
	}
	create := func(name string) {
		t.Helper()
		s.kubectl("create", "configmap", name, "-n", "e2e", "--from-literal=k=v-"+name)
	}
	snapshotCmd := func(args ...string) (int, string) {
		t.Helper()
		return run(t, exec.Command(bin, append(append([]string{"snapshot"}, args...), "--data-dir", s.dataDir)...))
	}
	save := func(name string, extra ...string) string {
		t.Helper()
		code, out := snapshotCmd(append([]string{"save", "--name", name}, extra...)...)
		if code != 0 || !strings.HasPrefix(out, "Saved "+snapDir+"/"+name+"-") {
			t.Fatalf("snapshot save --name %s: exit %d\n%s", name, code, out)
		}
		return strings.Fields(out)[1]
	}

	// 1. SQLite: an online snapshot, taken by another process.
	s.start()
	s.kubectl("create", "namespace", "e2e")
	create("before-sqlite-snap")
	sqliteSnap := save("sqlite-snap")
	create("after-sqlite-snap")
	s.stop()

	// 2. --cluster-init moves every object into etcd, once, keeping the
	// database aside; the schedule snapshots etcd and keeps the newest 2.
	var code int
	var out string
	s.start("--cluster-init", "--snapshot-schedule-cron", "@every 3s", "--snapshot-retention", "2")
	if !strings.Contains(s.out.String(), "Moved the SQLite datastore into embedded etcd") {
		t.Errorf("no move logged:\n%s", s.out)
	}
	if _, err := os.Stat(filepath.Join(dbDir, "etcd", "member", "snap", "db")); err != nil {
		t.Fatalf("etcd data not where documented: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dbDir, "state.db")); err == nil {
		t.Error("state.db still in place: the next start would move it again")
	}
	if _, err := os.Stat(filepath.Join(dbDir, "state.db.migrated")); err != nil {
		t.Errorf("the SQLite database was not kept: %v", err)
	}
	want("after --cluster-init", map[string]bool{"before-sqlite-snap": true, "after-sqlite-snap": true})
	// On etcd more servers may join: the scheduler, the controller-manager
	// and kubling's controllers run under the control-plane Lease, held by
	// this server (named after its node).
	host, _ := os.Hostname()
	if got := s.kubectl("get", "lease", "-n", "kube-system", "kubling-control-plane", "-o", "jsonpath={.spec.holderIdentity}"); got != strings.ToLower(host) {
		t.Errorf("control-plane lease held by %q, want %q", got, strings.ToLower(host))
	}
	if !strings.Contains(s.out.String(), "Leading the control plane") {
		t.Error("the server does not say it leads the control plane")
	}
	create("before-etcd-snap")
	etcdSnap := save("etcd-snap", "--compress")
	create("after-etcd-snap")
	eventually(t, time.Minute, "two scheduled snapshots, pruned to two", func() string {
		_, out := snapshotCmd("ls")
		if n := strings.Count(out, "\nscheduled-"); n != 2 {
			return fmt.Sprintf("%d scheduled:\n%s", n, out)
		}
		if !strings.Contains(s.out.String(), `"Saved a scheduled snapshot"`) || !strings.Contains(s.out.String(), `pruned=["`) {
			return "no prune logged yet"
		}
		return ""
	})
	code, out = snapshotCmd("ls")
	kinds := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) == 4 {
			kinds[f[0]] = f[1]
		}
	}
	if code != 0 || kinds[filepath.Base(sqliteSnap)] != "sqlite" || kinds[filepath.Base(etcdSnap)] != "etcd+zstd" {
		t.Errorf("snapshot ls: exit %d\n%s", code, out)
	}
	// The cluster lists them too, as SnapshotFile objects of this node.
	eventually(t, time.Minute, "SnapshotFile objects for both snapshots", func() string {
		out, _ := s.tryKubectl("get", "snapshotfiles", "-o", `jsonpath={range .items[*]}{.metadata.name}={.spec.kind}{"\n"}{end}`)
		objects := strings.Fields(out)
		if !slices.Contains(objects, filepath.Base(sqliteSnap)+"=sqlite") || !slices.Contains(objects, filepath.Base(etcdSnap)+"=etcd+zstd") {
			return "objects:\n" + out
		}
		return ""
	})
	s.stop()

	// 3. A plain restart stays on etcd, without --cluster-init.
	s.start()
	want("restart on etcd", map[string]bool{"before-etcd-snap": true, "after-etcd-snap": true})
	s.stop()
	// etcd is snapshotted through the running server: one line when it is not.
	code, out = snapshotCmd("save")
	expectOneLineError(t, code, out, "is kubling server running?")

	// 4. A truncated snapshot is refused with one line, nothing touched.
	whole, err := os.ReadFile(sqliteSnap)
	if err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(t.TempDir(), "truncated.db")
	if err := os.WriteFile(truncated, whole[:len(whole)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	before := hashTree(t, s.dataDir)
	code, out = run(t, exec.Command(bin, "server", "--data-dir", s.dataDir, "--cluster-reset", "--cluster-reset-restore-path", truncated))
	expectOneLineError(t, code, out, "broken SQLite snapshot")
	if hashTree(t, s.dataDir) != before {
		t.Error("a refused restore changed the data dir")
	}

	// 5. Restoring the etcd snapshot: what was there at save, nothing after.
	restore := func(path string) {
		t.Helper()
		code, out := run(t, exec.Command(bin, "server", "--data-dir", s.dataDir, "--cluster-reset", "--cluster-reset-restore-path", path))
		if code != 0 || !strings.Contains(out, "Restored the snapshot") {
			t.Fatalf("restore %s: exit %d\n%s", path, code, out)
		}
	}
	restore(etcdSnap)
	s.start()
	want("etcd restore", map[string]bool{"before-sqlite-snap": true, "before-etcd-snap": true, "after-etcd-snap": false})
	// Writes go on after a restore (revisions moved past the old ones).
	create("after-etcd-restore")
	want("etcd restore", map[string]bool{"after-etcd-restore": true})
	s.stop()

	// 5b. On a new machine (an empty data dir), the etcd snapshot and the
	// token give the cluster back, its CA included; without the token, or
	// with another cluster's, nothing is restored.
	moved := newServer(t)
	restoreInto := func(extra ...string) (int, string) {
		return run(t, exec.Command(bin, append([]string{"server", "--data-dir", moved.dataDir, "--cluster-reset", "--cluster-reset-restore-path", etcdSnap}, extra...)...))
	}
	code, out = restoreInto()
	expectOneLineError(t, code, out, "give the cluster's --token")
	code, out = restoreInto("--token", "another-clusters-secret-0123456789")
	expectOneLineError(t, code, out, "does not open the cluster keys")
	if _, err := os.Stat(filepath.Join(moved.dataDir, "server", "db", "etcd")); err == nil {
		t.Error("a refused restore left etcd data in the new data dir")
	}
	clusterToken := strings.TrimSpace(readFile(t, filepath.Join(s.dataDir, "server", "token")))
	if code, out = restoreInto("--token", clusterToken); code != 0 || !strings.Contains(out, "Took the cluster keys from the snapshot") {
		t.Fatalf("restore on a new machine: exit %d\n%s", code, out)
	}
	moved.start()
	if got := moved.kubectl("get", "configmap", "before-etcd-snap", "-n", "e2e", "-o", "jsonpath={.data.k}"); got != "v-before-etcd-snap" {
		t.Errorf("new machine: configmap = %q", got)
	}
	for _, f := range []string{"server-ca.crt", "client-ca.crt", "service.key", "encryption-config.yaml"} {
		if readFile(t, filepath.Join(moved.dataDir, "server", "tls", f)) != readFile(t, filepath.Join(s.dataDir, "server", "tls", f)) {
			t.Errorf("new machine: %s differs from the cluster's", f)
		}
	}
	moved.stop()

	// 6. --cluster-reset alone makes the lone member a cluster of one and
	// serves its data.
	s.start("--cluster-reset")
	want("cluster reset", map[string]bool{"after-etcd-restore": true})
	s.stop()

	// 7. Restoring the SQLite snapshot turns the data dir back to SQLite.
	restore(sqliteSnap)
	s.start()
	want("sqlite restore", map[string]bool{"before-sqlite-snap": true, "after-sqlite-snap": false, "before-etcd-snap": false})
	if _, err := os.Stat(filepath.Join(dbDir, "etcd")); err == nil {
		t.Error("etcd data still in place after restoring SQLite")
	}
	s.stop()
	kept, _ := filepath.Glob(filepath.Join(dbDir, "*-old-*"))
	if len(kept) < 2 {
		t.Errorf("former datastores kept aside: %v, want the etcd dir of each restore", kept)
	}
}
