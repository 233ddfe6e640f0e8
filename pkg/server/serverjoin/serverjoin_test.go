package serverjoin

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	testclock "k8s.io/utils/clock/testing"

	"github.com/kubling/kubling/pkg/config"
	"github.com/kubling/kubling/pkg/datastore"
	"github.com/kubling/kubling/test/testutil"
)

// A server started before the one it joins through (servers of a site boot
// in no order) waits for it until stopped, past the backoff's cap, logging
// the reason once; it used to exit after about 30 s.
func TestAskWaitsPastTheCap(t *testing.T) {
	addr := testutil.RefusedAddr(t)
	c := &config.Server{Node: config.Node{DataDir: t.TempDir(), NodeName: "s2", NodeIP: "192.0.2.11"},
		WriteKubeconfigMode: config.DefaultKubeconfigMode, HTTPSPort: config.DefaultHTTPSPort,
		ClusterCIDR: config.DefaultClusterCIDR, ServiceCIDR: config.DefaultServiceCIDR, ClusterDomain: config.DefaultClusterDomain,
		FlannelBackend: "vxlan", NFSReclaimPolicy: "Delete", NFSDefaultClass: "auto", DisableAgent: true,
		Snapshots: config.Snapshots{Schedule: config.DefaultSnapshotSchedule, Retention: config.DefaultSnapshotRetention},
		Token:     "KL1" + strings.Repeat("ab", 32) + "::" + strings.Repeat("s", 20),
		Datastore: config.Datastore{JoinURL: "https://" + addr}}
	if err := c.Normalize(); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	log, logged := testutil.LineLog()

	clk := testclock.NewFakeClock(time.Now())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := ask(ctx, clk, c, c.Layout(), datastore.EtcdMember{Name: "s2", IP: "192.0.2.11"}, log)
		done <- err
	}()
	// 20 waits of 30 s: 10 minutes, far past the 15 s cap.
	if err, returned := testutil.StepClock(clk, 20, 30*time.Second, done); returned {
		t.Fatalf("the join gave up while the server was away: %v", err)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("stopped: %v", err)
	}
	if lines := logged(); len(lines) != 1 || !strings.Contains(lines[0], "connection refused") {
		t.Errorf("want one line for the one reason, got %q", lines)
	}
}
