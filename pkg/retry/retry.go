// Package retry runs an attempt until it succeeds, fails for good, or its
// context ends. Between attempts it waits by apimachinery's exponential
// backoff, held at its cap: wait.ExponentialBackoff ends a loop once the
// delay reaches Cap, whatever Steps says, and a node that boots before its
// server or datastore (every device after a site's power cut) must wait for
// it, not exit.
package retry

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/clock"
)

// Backoff is kubling's: 1 s, doubling, 10% jitter, at most max.
func Backoff(max time.Duration) wait.Backoff {
	return wait.Backoff{Duration: time.Second, Factor: 2, Jitter: 0.1, Steps: math.MaxInt32, Cap: max}
}

// permanent marks an error no retry can mend.
type permanent struct{ err error }

func (p permanent) Error() string { return p.err.Error() }
func (p permanent) Unwrap() error { return p.err }

// Permanent wraps err so that Until returns it at once.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanent{err}
}

// Until calls attempt until it returns nil or a Permanent error, or ctx
// ends, waiting b's delays between calls (held at b.Cap; b.Steps ignored).
// onChange, if set, is called with each failure whose text differs from the
// one before and the number of attempts so far: one log line per change of
// reason, not one per try. It returns nil, the permanent error (unwrapped),
// or ctx's error with the last failure.
func Until(ctx context.Context, clk clock.Clock, b wait.Backoff, attempt func(context.Context) error, onChange func(err error, attempts int)) error {
	b.Steps = math.MaxInt32
	delay := b.DelayFunc()
	last := ""
	for attempts := 1; ; attempts++ {
		err := attempt(ctx)
		if err == nil {
			return nil
		}
		var p permanent
		if errors.As(err, &p) {
			return p.err
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		}
		if err.Error() != last && onChange != nil {
			onChange(err, attempts)
		}
		last = err.Error()
		t := clk.NewTimer(delay())
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-t.C():
		}
	}
}
