// Package keyqueue is the work loop of kubling's cluster controllers: keys
// added from informer events, one worker that syncs each key once the
// informers have listed, failures retried with client-go's back-off, a
// burst of events for one key folded into one sync.
package keyqueue

import (
	"context"
	"sync"

	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
)

// Queue feeds keys to Sync.
type Queue struct {
	queue workqueue.TypedRateLimitingInterface[string]
	sync  func(ctx context.Context, key string) error
	what  string
	log   klog.Logger
	done  sync.WaitGroup
}

// New returns a queue named name whose worker calls sync; a failure is
// logged as "<what>; retrying" with the key, and retried later.
func New(name, what string, sync func(ctx context.Context, key string) error, log klog.Logger) *Queue {
	return &Queue{
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: name}),
		sync: sync, what: what, log: log,
	}
}

// Add queues key.
func (q *Queue) Add(key string) { q.queue.Add(key) }

// Run starts the worker, which waits for synced and then works until ctx
// ends or Stop.
func (q *Queue) Run(ctx context.Context, synced ...cache.InformerSynced) {
	q.done.Add(1)
	go func() {
		defer q.done.Done()
		if !cache.WaitForCacheSync(ctx.Done(), synced...) {
			return
		}
		for q.next(ctx) {
		}
	}()
	go func() { <-ctx.Done(); q.queue.ShutDown() }()
}

// Stop ends the worker (after the sync under way) and waits for it.
func (q *Queue) Stop() {
	q.queue.ShutDown()
	q.done.Wait()
}

// next syncs one key; false once the queue is shut down.
func (q *Queue) next(ctx context.Context) bool {
	key, quit := q.queue.Get()
	if quit {
		return false
	}
	defer q.queue.Done(key)
	if err := q.sync(ctx, key); err != nil {
		q.log.Error(err, q.what+"; retrying", "key", key)
		q.queue.AddRateLimited(key)
		return true
	}
	q.queue.Forget(key)
	return true
}
