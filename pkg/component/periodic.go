package component

import (
	"context"
	"sync"
	"time"
)

// Periodic is a component that runs a task a first time after a delay,
// then at every interval (or at the times of a schedule, NewScheduled),
// until it is stopped. A failed run goes to onError and is tried again at
// the next interval; it never stops kubling.
type Periodic struct {
	name         string
	first, every time.Duration
	next         func(time.Time) time.Time // when set, the schedule
	run          func(context.Context) error
	onError      func(error)

	cancel context.CancelFunc
	done   sync.WaitGroup
}

var _ Component = (*Periodic)(nil)

// NewPeriodic returns the component; onError may be nil.
func NewPeriodic(name string, first, every time.Duration, run func(context.Context) error, onError func(error)) *Periodic {
	return &Periodic{name: name, first: first, every: every, run: run, onError: onError}
}

// NewScheduled returns a component that runs at the times next gives (a
// cron schedule's Next), the first after start.
func NewScheduled(name string, next func(time.Time) time.Time, run func(context.Context) error, onError func(error)) *Periodic {
	return &Periodic{name: name, next: next, run: run, onError: onError}
}

// wait is how long until the next run.
func (p *Periodic) wait(first bool) time.Duration {
	switch {
	case p.next != nil:
		now := time.Now()
		return p.next(now).Sub(now)
	case first:
		return p.first
	}
	return p.every
}

func (p *Periodic) Name() string { return p.name }

func (p *Periodic) Start(ctx context.Context) error {
	ctx, p.cancel = context.WithCancel(ctx)
	p.done.Add(1)
	go func() {
		defer p.done.Done()
		t := time.NewTimer(p.wait(true))
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if err := p.run(ctx); err != nil && p.onError != nil && ctx.Err() == nil {
				p.onError(err)
			}
			t.Reset(p.wait(false))
		}
	}()
	return nil
}

func (p *Periodic) Ready(context.Context) error { return nil }

// Stop cancels the task's context and waits for a run in progress; one
// never started has nothing to stop.
func (p *Periodic) Stop() error {
	if p.cancel == nil {
		return nil
	}
	p.cancel()
	p.done.Wait()
	return nil
}
