package agent

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	testclock "k8s.io/utils/clock/testing"

	"github.com/kubling/kubling/pkg/config"
	"github.com/kubling/kubling/pkg/datadir"
	"github.com/kubling/kubling/pkg/token"
	"github.com/kubling/kubling/test/testutil"
)

// An agent that boots before its server waits for it until stopped, past
// the backoff's cap, logging the reason once (it used to exit after 33 s).
func TestJoinWaitsForTheServerPastTheCap(t *testing.T) {
	server, _ := url.Parse("https://" + testutil.RefusedAddr(t))
	tok, err := token.Parse(token.Prefix + strings.Repeat("ab", 32) + "::secret")
	if err != nil {
		t.Fatal(err)
	}
	node := &Node{cfg: config.Node{NodeName: "edge-1"}, layout: datadir.New(t.TempDir()), ip: "10.0.0.5"}
	log, logged := testutil.LineLog()

	clk := testclock.NewFakeClock(time.Now())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { _, err := joinCluster(ctx, clk, server, tok, node, log); done <- err }()
	// 20 waits of 30 s: 10 minutes, far past the 30 s cap.
	if err, returned := testutil.StepClock(clk, 20, 30*time.Second, done); returned {
		t.Fatalf("joinCluster gave up while the server was away: %v", err)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("stopped: %v", err)
	}
	if lines := logged(); len(lines) != 1 || !strings.Contains(lines[0], "connection refused") {
		t.Errorf("want one line for the one reason, got %q", lines)
	}
}
