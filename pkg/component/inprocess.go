package component

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// PrepareFunc does a component's fallible set-up synchronously (so a bad
// flag or a busy port fails Start) and returns the blocking function that
// serves until its context ends.
type PrepareFunc func(ctx context.Context) (run func(ctx context.Context) error, err error)

// ProbeFunc answers nil once a component is ready.
type ProbeFunc func(ctx context.Context) error

// InProcess runs an upstream component (apiserver, kubelet…) inside
// kubling's process as a Component.
type InProcess struct {
	name    string
	prepare PrepareFunc
	probe   ProbeFunc

	cancel context.CancelFunc
	done   chan struct{}
	err    error
	// grace bounds how long Stop waits for run to return before it leaves
	// the component to end with the process.
	grace time.Duration
}

var _ Exiter = (*InProcess)(nil)

// ErrLeftRunning reports a component that did not finish within its grace
// period and ends with the process; the Runner logs it, it is not a failure.
var ErrLeftRunning = errors.New("left to end with the process")

// StopGrace sets how long Stop waits (default 30 s). Upstream components
// whose loops run until the process exits (kube-proxy, the kubelet's status
// loops, an apiserver still serving those) use a short grace.
func (p *InProcess) StopGrace(d time.Duration) *InProcess {
	p.grace = d
	return p
}

// NewInProcess returns a component that runs prepare's function and is
// ready when probe passes.
func NewInProcess(name string, prepare PrepareFunc, probe ProbeFunc) *InProcess {
	return &InProcess{name: name, prepare: prepare, probe: probe, grace: 30 * time.Second}
}

func (p *InProcess) Name() string { return p.name }

func (p *InProcess) Start(context.Context) error {
	// The component lives until Stop, not until the start-up context ends.
	ctx, cancel := context.WithCancel(context.Background())
	run, err := p.prepare(ctx)
	if err != nil {
		cancel()
		return err
	}
	p.cancel = cancel
	p.done = make(chan struct{})
	go func() {
		defer close(p.done)
		p.err = run(ctx)
	}()
	return nil
}

// Ready probes until the probe passes, the component exits, or ctx ends.
func (p *InProcess) Ready(ctx context.Context) error {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		select {
		case <-p.done:
			return fmt.Errorf("exited during start-up: %w", p.ExitErr())
		default:
		}
		if last = p.probe(ctx); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last probe: %v)", ctx.Err(), last)
		case <-p.done:
		case <-tick.C:
		}
	}
}

// Exiter is a component that can end on its own.
type Exiter interface {
	Component
	Done() <-chan struct{}
	ExitErr() error
}

// FirstExit reports, once, the first of the components (those that are
// Exiters) to exit on its own, with why.
func FirstExit(components []Component) <-chan error {
	out := make(chan error, len(components))
	for _, c := range components {
		if e, ok := c.(Exiter); ok {
			go func() {
				<-e.Done()
				out <- fmt.Errorf("%s exited: %w", e.Name(), e.ExitErr())
			}()
		}
	}
	return out
}

// Done is closed when the component has exited.
func (p *InProcess) Done() <-chan struct{} { return p.done }

// ExitErr is why the component exited (valid once Done is closed).
func (p *InProcess) ExitErr() error {
	if p.err == nil {
		return errors.New("exited without error")
	}
	return p.err
}

// Stop cancels the component and waits up to its grace period for it to return.
func (p *InProcess) Stop() error {
	p.cancel()
	select {
	case <-p.done:
		return nil
	case <-time.After(p.grace):
		return fmt.Errorf("still running after %s: %w", p.grace, ErrLeftRunning)
	}
}

// ParseFlags parses args into an upstream component's flag sets.
func ParseFlags(component string, sets map[string]*pflag.FlagSet, args []string) error {
	fs := pflag.NewFlagSet(component, pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	for _, s := range sets {
		fs.AddFlagSet(s)
	}
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%s flags: %w", component, err)
	}
	return nil
}

// HTTPProbe returns a probe that wants 200 from url (TLS when tlsConfig is set).
func HTTPProbe(url string, tlsConfig *tls.Config) ProbeFunc {
	return HTTPProbeContains(url, tlsConfig, "")
}

// HTTPProbeContains wants 200 from url and a body containing want.
func HTTPProbeContains(url string, tlsConfig *tls.Config, want string) ProbeFunc {
	client := &http.Client{
		Timeout:   2 * time.Second,
		Transport: &http.Transport{TLSClientConfig: tlsConfig},
	}
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s", url, resp.Status)
		}
		if want == "" {
			return nil
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if err != nil {
			return err
		}
		if !strings.Contains(string(body), want) {
			return fmt.Errorf("%s: no %q yet", url, want)
		}
		return nil
	}
}

// LoopbackHealth probes a component's /healthz over TLS on loopback. The
// components serve it with an in-memory self-signed certificate, so there is
// nothing to verify; the probe carries no credentials.
func LoopbackHealth(port int) ProbeFunc {
	return HTTPProbe(fmt.Sprintf("https://127.0.0.1:%d/healthz", port), &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // loopback health, no secrets
}
