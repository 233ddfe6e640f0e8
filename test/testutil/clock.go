package testutil

import (
	"time"

	testclock "k8s.io/utils/clock/testing"
)

// StepClock steps clk by step each time the loop behind done waits on it,
// steps times or until done is sent; it returns the loop's error and
// whether the loop returned. A retry loop that gives up returns early.
func StepClock(clk *testclock.FakeClock, steps int, step time.Duration, done <-chan error) (error, bool) {
	for i := 0; i < steps; i++ {
		for !clk.HasWaiters() {
			select {
			case err := <-done:
				return err, true
			case <-time.After(time.Millisecond):
			}
		}
		clk.Step(step)
	}
	select {
	case err := <-done:
		return err, true
	case <-time.After(100 * time.Millisecond):
		return nil, false
	}
}
