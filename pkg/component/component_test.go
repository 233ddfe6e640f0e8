package component

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"k8s.io/klog/v2"
)

type fake struct {
	name             string
	log              *[]string
	startErr, ready  error
	blockUntilCancel bool
}

func (f *fake) Name() string { return f.name }
func (f *fake) Start(context.Context) error {
	*f.log = append(*f.log, "start "+f.name)
	return f.startErr
}
func (f *fake) Ready(ctx context.Context) error {
	if f.blockUntilCancel {
		<-ctx.Done()
		return ctx.Err()
	}
	return f.ready
}
func (f *fake) Stop() error {
	*f.log = append(*f.log, "stop "+f.name)
	return nil
}

func TestRunnerStartsInOrderStopsInReverse(t *testing.T) {
	var log []string
	r := NewRunner(klog.Background())
	if err := r.Start(context.Background(), time.Second, &fake{name: "a", log: &log}, &fake{name: "b", log: &log}); err != nil {
		t.Fatal(err)
	}
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	want := []string{"start a", "start b", "stop b", "stop a"}
	if !reflect.DeepEqual(log, want) {
		t.Fatalf("got %v, want %v", log, want)
	}
}

func TestRunnerStopsStartedOnFailure(t *testing.T) {
	var log []string
	r := NewRunner(klog.Background())
	err := r.Start(context.Background(), time.Second,
		&fake{name: "a", log: &log},
		&fake{name: "b", log: &log, ready: errors.New("boom")},
		&fake{name: "c", log: &log})
	if err == nil || !strings.Contains(err.Error(), "b: boom") {
		t.Fatalf("want error naming b, got %v", err)
	}
	want := []string{"start a", "start b", "stop b", "stop a"}
	if !reflect.DeepEqual(log, want) {
		t.Fatalf("got %v, want %v", log, want)
	}
}

func TestRunnerReadyTimeoutIsReported(t *testing.T) {
	var log []string
	r := NewRunner(klog.Background())
	err := r.Start(context.Background(), 20*time.Millisecond, &fake{name: "slow", log: &log, blockUntilCancel: true})
	if err == nil || !strings.Contains(err.Error(), "not ready after 20ms") {
		t.Fatalf("want timeout error, got %v", err)
	}
}

// With no ready timeout, Ready waits until the caller's context ends (an
// external datastore waited for until kubling is stopped).
func TestRunnerWithoutReadyTimeoutWaitsForItsContext(t *testing.T) {
	var log []string
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	begin := time.Now()
	err := NewRunner(klog.Background()).Start(ctx, 0, &fake{name: "database", log: &log, blockUntilCancel: true})
	if !errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "not ready after") || time.Since(begin) < 300*time.Millisecond {
		t.Fatalf("after %v: %v", time.Since(begin), err)
	}
}

func TestServeEndsOnCancelOrOnAComponentsExit(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	waiting := NewInProcess("waits", func(context.Context) (func(context.Context) error, error) {
		return func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }, nil
	}, nil)
	if err := waiting.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer waiting.Stop()
	cancel()
	if err := Serve(ctx, klog.Background(), []Component{waiting}); err != nil {
		t.Fatalf("a signal must end Serve without error, got %v", err)
	}

	dying := NewInProcess("dies", func(context.Context) (func(context.Context) error, error) {
		return func(context.Context) error { return errors.New("boom") }, nil
	}, nil)
	if err := dying.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	err := Serve(context.Background(), klog.Background(), []Component{&fake{name: "plain"}, dying})
	if err == nil || !strings.Contains(err.Error(), "dies exited: boom") {
		t.Fatalf("got %v", err)
	}
}
