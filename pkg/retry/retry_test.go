package retry

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	testclock "k8s.io/utils/clock/testing"

	"github.com/kubling/kubling/test/testutil"
)

// Past the cap, Until goes on at the cap's pace (wait.ExponentialBackoff
// stops there), logs once per change of reason, and ends with its context.
func TestUntilKeepsTryingPastTheCap(t *testing.T) {
	clk := testclock.NewFakeClock(time.Now())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	attempts, changes := 0, 0
	attempt := func(context.Context) error {
		attempts++
		if attempts <= 20 {
			return errors.New("connection refused")
		}
		return fmt.Errorf("503 another server is joining")
	}
	done := make(chan error, 1)
	go func() { done <- Until(ctx, clk, Backoff(15*time.Second), attempt, func(error, int) { changes++ }) }()
	err, returned := testutil.StepClock(clk, 40, 30*time.Second, done)
	if returned {
		t.Fatalf("Until returned %v; it must keep trying", err)
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("ended with %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Until did not end with its context")
	}
	if attempts < 40 {
		t.Errorf("%d attempts in 40 waits", attempts)
	}
	if changes != 2 {
		t.Errorf("%d reasons reported, want 2 (one per change)", changes)
	}
}

func TestUntilDelaysGrowToTheCap(t *testing.T) {
	clk := testclock.NewFakeClock(time.Now())
	var delays []time.Duration
	start := clk.Now()
	attempt := func(context.Context) error {
		delays = append(delays, clk.Since(start))
		start = clk.Now()
		if len(delays) == 12 {
			return nil
		}
		return errors.New("down")
	}
	done := make(chan error, 1)
	go func() { done <- Until(context.Background(), clk, Backoff(30*time.Second), attempt, nil) }()
	for {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			// The first call at once; then about 1, 2, 4, 8, 16 s and the cap.
			for i, d := range delays[1:] {
				want := time.Duration(1<<i) * time.Second
				if want > 30*time.Second {
					want = 30 * time.Second
				}
				if d < want || d > want+want/10+10*time.Millisecond {
					t.Errorf("wait %d: %v, want %v to %v", i+1, d, want, want+want/10)
				}
			}
			return
		default:
		}
		if clk.HasWaiters() {
			clk.Step(10 * time.Millisecond)
		} else {
			time.Sleep(100 * time.Microsecond)
		}
	}
}

func TestUntilEnds(t *testing.T) {
	clk := testclock.NewFakeClock(time.Now())
	wrong := errors.New("401 wrong token")
	if err := Until(context.Background(), clk, Backoff(time.Second), func(context.Context) error { return Permanent(wrong) }, nil); err != wrong {
		t.Errorf("a permanent error: %v", err)
	}
	if Permanent(nil) != nil {
		t.Error("Permanent(nil) is not nil")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := Until(ctx, clk, Backoff(time.Second), func(context.Context) error { return errors.New("refused") }, nil)
	if !errors.Is(err, context.Canceled) || err.Error() != "context canceled (last: refused)" {
		t.Errorf("a cancelled context: %v", err)
	}
}
