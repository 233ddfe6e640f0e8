package datastore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	testclock "k8s.io/utils/clock/testing"

	"github.com/kubling/kubling/pkg/datadir"
	"github.com/kubling/kubling/test/testutil"
)

// waitsPastTheCap runs ready with a fake clock through 20 waits of 30 s (far
// past the 30 s cap): it must still be waiting, have logged its one reason
// once, and end when stopped.
func waitsPastTheCap(t *testing.T, ready func(context.Context) error, clk *testclock.FakeClock, lines func() []string, reason string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- ready(ctx) }()
	if err, returned := testutil.StepClock(clk, 20, 30*time.Second, done); returned {
		t.Fatalf("gave up while the datastore was away: %v", err)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("stopped: %v", err)
	}
	if got := lines(); len(got) != 1 || !strings.Contains(got[0], reason) {
		t.Errorf("want one line naming %q, got %q", reason, got)
	}
}

// A server that starts before its PostgreSQL or MySQL server waits for it
// (here kine fails at once on a CA file not there yet), and the password in
// the DSN stays out of the log.
func TestSQLWaitsPastTheCap(t *testing.T) {
	log, lines := testutil.LineLog()
	dir := t.TempDir()
	ds, err := New(Config{Layout: datadir.New(dir), Log: log,
		Endpoint: "postgres://kubling:s3cret@127.0.0.1:1/kubling?sslmode=verify-full&sslrootcert=" + filepath.Join(dir, "ca-not-yet.pem")})
	if err != nil {
		t.Fatal(err)
	}
	s := ds.(*sqlStore)
	clk := testclock.NewFakeClock(time.Now())
	s.clock = clk
	waitsPastTheCap(t, s.Ready, clk, lines, "ca-not-yet.pem")
	for _, l := range lines() {
		if strings.Contains(l, "s3cret") {
			t.Errorf("the password was logged: %s", l)
		}
	}
}

// A server that starts before its external etcd waits for it (here the
// client fails at once: its certificate files are still being written).
func TestExternalEtcdWaitsPastTheCap(t *testing.T) {
	log, lines := testutil.LineLog()
	dir := t.TempDir()
	for _, f := range []string{"etcd-ca.pem", "client.pem", "client-key.pem"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ds, err := New(Config{Layout: datadir.New(dir), Log: log, Endpoint: "https://127.0.0.1:1",
		TLS: TLSFiles{CAFile: filepath.Join(dir, "etcd-ca.pem"), CertFile: filepath.Join(dir, "client.pem"), KeyFile: filepath.Join(dir, "client-key.pem")}})
	if err != nil {
		t.Fatal(err)
	}
	s := ds.(*externalEtcd)
	clk := testclock.NewFakeClock(time.Now())
	s.clock = clk
	waitsPastTheCap(t, s.Ready, clk, lines, "etcd client certificates")
}

// External etcd over http:// is allowed, with a warning naming the endpoint.
func TestExternalEtcdOverHTTPWarns(t *testing.T) {
	log, lines := testutil.LineLog()
	if _, err := New(Config{Layout: datadir.New(t.TempDir()), Log: log, Endpoint: "https://10.0.0.1:2379,http://10.0.0.2:2379"}); err != nil {
		t.Fatal(err)
	}
	if got := lines(); len(got) != 1 || !strings.Contains(got[0], "plain http") || !strings.Contains(got[0], "http://10.0.0.2:2379") {
		t.Errorf("want one warning for the http endpoint, got %q", got)
	}
	log, lines = testutil.LineLog()
	if _, err := New(Config{Layout: datadir.New(t.TempDir()), Log: log, Endpoint: "https://10.0.0.1:2379"}); err != nil {
		t.Fatal(err)
	}
	if got := lines(); len(got) != 0 {
		t.Errorf("https only: %q", got)
	}
}
