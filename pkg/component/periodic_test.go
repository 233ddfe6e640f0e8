package component

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

func TestPeriodic(t *testing.T) {
	var runs, failures atomic.Int32
	p := NewPeriodic("task", 10*time.Millisecond, 10*time.Millisecond, func(context.Context) error {
		if runs.Add(1)%2 == 0 {
			return errors.New("every second run fails")
		}
		return nil
	}, func(error) { failures.Add(1) })
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for runs.Load() < 4 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	n := runs.Load()
	if n < 4 || failures.Load() < 1 {
		t.Fatalf("%d runs, %d failures: want runs to go on after a failure", n, failures.Load())
	}
	time.Sleep(30 * time.Millisecond)
	if runs.Load() != n {
		t.Error("the task ran after Stop")
	}
}

func TestPeriodicWaitsForTheFirstDelay(t *testing.T) {
	var runs atomic.Int32
	p := NewPeriodic("task", time.Hour, time.Hour, func(context.Context) error { runs.Add(1); return nil }, nil)
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	if runs.Load() != 0 {
		t.Errorf("ran %d times before its first delay", runs.Load())
	}
}

func TestScheduledRunsAtTheScheduleTimes(t *testing.T) {
	var asked []time.Time
	var runs atomic.Int32
	next := func(now time.Time) time.Time {
		asked = append(asked, now) // only the component's goroutine calls next
		if len(asked) > 2 {
			return now.Add(time.Hour)
		}
		return now.Add(10 * time.Millisecond)
	}
	p := NewScheduled("task", next, func(context.Context) error { runs.Add(1); return nil }, nil)
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for runs.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(30 * time.Millisecond)
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	if runs.Load() != 2 {
		t.Errorf("ran %d times, want 2: the schedule's third time is an hour away", runs.Load())
	}
}
