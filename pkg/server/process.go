package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/spf13/pflag"
)

// inProcess runs an upstream component inside kubling's process as a
// component.Component. prepare does the fallible set-up synchronously (so a
// bad flag or a busy port fails Start); the blocking run function it returns
// serves until its context ends.
type inProcess struct {
	name    string
	prepare func(ctx context.Context) (run func(ctx context.Context) error, err error)
	probe   func(ctx context.Context) error

	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

func (p *inProcess) Name() string { return p.name }

func (p *inProcess) Start(context.Context) error {
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
func (p *inProcess) Ready(ctx context.Context) error {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		select {
		case <-p.done:
			return fmt.Errorf("exited during start-up: %w", p.exitErr())
		default:
		}
		if last = p.probe(ctx); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), last)
		case <-p.done:
		case <-tick.C:
		}
	}
}

// Done is closed when the component has exited.
func (p *inProcess) Done() <-chan struct{} { return p.done }

func (p *inProcess) exitErr() error {
	if p.err == nil {
		return errors.New("exited without error")
	}
	return p.err
}

func (p *inProcess) Stop() error {
	p.cancel()
	select {
	case <-p.done:
		return nil
	case <-time.After(30 * time.Second):
		return errors.New("did not stop within 30s")
	}
}

// parseFlags parses args into the component's upstream flag sets.
func parseFlags(component string, sets map[string]*pflag.FlagSet, args []string) error {
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

// httpsProbe returns a probe that wants 200 from url.
func httpsProbe(url string, tlsConfig *tls.Config) func(ctx context.Context) error {
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
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s: %s", url, resp.Status, body)
		}
		return nil
	}
}

// loopbackHealth probes a component's health endpoint on loopback. The
// components serve it with an in-memory self-signed certificate, so there is
// nothing to verify; the probe carries no credentials.
func loopbackHealth(port int) func(ctx context.Context) error {
	return httpsProbe(fmt.Sprintf("https://127.0.0.1:%d/healthz", port), &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // loopback health, no secrets
}
