// Package component gives every long-running part of kubling the same
// lifecycle: start in order, wait until ready, stop in reverse.
package component

import (
	"context"
	"errors"
	"fmt"
	"time"

	"k8s.io/klog/v2"

	"github.com/kubling/kubling/pkg/logging"
)

// Component is one long-running part of kubling (datastore, apiserver, kubelet…).
type Component interface {
	// Name is short and lowercase; it appears in logs and errors.
	Name() string
	// Start launches the component and returns once it is running in the
	// background. It must not block until the component is ready.
	Start(ctx context.Context) error
	// Ready blocks until the component serves, or returns why it cannot.
	Ready(ctx context.Context) error
	// Stop ends the component and releases what it holds. It is called once,
	// only after a successful Start.
	Stop() error
}

// Runner starts components in order and stops the started ones in reverse.
type Runner struct {
	log     klog.Logger
	started []Component
}

// NewRunner returns a Runner that logs one line per component with its
// start-up duration.
func NewRunner(log klog.Logger) *Runner {
	return &Runner{log: log}
}

// Start starts each component and waits for it to be ready before the next.
// readyTimeout bounds each Ready call (0: until ctx ends, for a component
// that waits on something outside kubling). On the first failure it stops
// what it started (in reverse) and returns the error.
func (r *Runner) Start(ctx context.Context, readyTimeout time.Duration, components ...Component) error {
	for _, c := range components {
		begin := time.Now()
		if err := c.Start(ctx); err != nil {
			return errors.Join(fmt.Errorf("start %s: %w", c.Name(), err), r.Stop())
		}
		r.started = append(r.started, c)
		readyCtx, cancel := ctx, context.CancelFunc(func() {})
		if readyTimeout > 0 {
			readyCtx, cancel = context.WithTimeout(ctx, readyTimeout)
		}
		err := c.Ready(readyCtx)
		timedOut := readyCtx.Err() != nil && ctx.Err() == nil
		cancel()
		if err != nil {
			if timedOut {
				err = fmt.Errorf("not ready after %s: %w", readyTimeout, err)
			}
			return errors.Join(fmt.Errorf("%s: %w", c.Name(), err), r.Stop())
		}
		r.log.Info("Ready", "component", c.Name(), "duration", time.Since(begin).Round(time.Millisecond))
	}
	return nil
}

// Stop stops every started component in reverse order and returns all errors.
func (r *Runner) Stop() error {
	var errs []error
	for i := len(r.started) - 1; i >= 0; i-- {
		c := r.started[i]
		begin := time.Now()
		if err := c.Stop(); errors.Is(err, ErrLeftRunning) {
			r.log.V(1).Info("Not stopped", "component", c.Name(), "reason", err)
			continue
		} else if err != nil {
			errs = append(errs, fmt.Errorf("stop %s: %w", c.Name(), err))
			continue
		}
		r.log.V(1).Info("Stopped", "component", c.Name(), "duration", time.Since(begin).Round(time.Millisecond))
	}
	r.started = nil
	return errors.Join(errs...)
}

// Serve blocks until ctx ends (a signal: nil) or one of the watched
// components exits (its error); the caller then stops the runner.
func Serve(ctx context.Context, log klog.Logger, watched []Component) error {
	select {
	case <-ctx.Done():
		log.Info("Stopping")
		logging.Stopping(log)
		return nil
	case err := <-FirstExit(watched):
		return err
	}
}
