package component

import (
	"context"
	"sync"
	"time"
)

// Periodic is a component that runs a task a first time after a delay,
// then at every interval, until it is stopped. A failed run goes to
// onError and is tried again at the next interval; it never stops kubling.
type Periodic struct {
	name         string
	first, every time.Duration
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

func (p *Periodic) Name() string { return p.name }

func (p *Periodic) Start(ctx context.Context) error {
	ctx, p.cancel = context.WithCancel(ctx)
	p.done.Add(1)
	go func() {
		defer p.done.Done()
		t := time.NewTimer(p.first)
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
			t.Reset(p.every)
		}
	}()
	return nil
}

func (p *Periodic) Ready(context.Context) error { return nil }

// Stop cancels the task's context and waits for a run in progress.
func (p *Periodic) Stop() error {
	p.cancel()
	p.done.Wait()
	return nil
}
