package keyqueue

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"k8s.io/klog/v2"
)

// TestQueueRetriesAFailedKey: a key whose sync fails is synced again, and
// Stop waits for the worker.
func TestQueueRetriesAFailedKey(t *testing.T) {
	var mu sync.Mutex
	calls := map[string]int{}
	done := make(chan struct{})
	q := New("test", "sync", func(_ context.Context, key string) error {
		mu.Lock()
		defer mu.Unlock()
		calls[key]++
		if calls[key] == 1 {
			return errors.New("first try fails")
		}
		close(done)
		return nil
	}, klog.Background())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	q.Add("a")
	q.Run(ctx, func() bool { return true })
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the failed key was not synced again")
	}
	q.Stop()
	if calls["a"] != 2 {
		t.Fatalf("synced %d times, want 2", calls["a"])
	}
}
