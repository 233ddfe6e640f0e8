//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kubling/kubling/test/dbserver"
)

// TestDurabilityUnderKill: writers create ConfigMaps as fast as they can
// while the server is killed with SIGKILL, 10 times per datastore; after
// each kill the server starts again with no repair, and at the end every
// create the apiserver acknowledged is there.
func TestDurabilityUnderKill(t *testing.T) {
	const rounds = 10
	for _, kind := range []string{"sqlite", "etcd", "postgres", "mariadb"} {
		t.Run(kind, func(t *testing.T) {
			var flags []string
			switch kind {
			case "etcd":
				flags = []string{"--cluster-init"}
			case "postgres", "mariadb":
				ds, err := dbserver.Init(kind, filepath.Join(t.TempDir(), kind))
				if err != nil {
					t.Fatal(err)
				}
				db, err := ds.Start()
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(db.Stop)
				flags = ds.Flags
			}
			s := newServer(t)
			flags = append(flags, "--disable-snapshots")
			var mu sync.Mutex
			var acked []string
			for round := range rounds {
				s.start(flags...)
				client := adminClient(t, s)
				if round == 0 {
					if _, err := client.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "durable"}}, metav1.CreateOptions{}); err != nil {
						t.Fatal(err)
					}
				}
				ctx, cancel := context.WithCancel(context.Background())
				var wg sync.WaitGroup
				for w := range 4 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for i := 0; ctx.Err() == nil; i++ {
							name := fmt.Sprintf("r%02d-w%d-%06d", round, w, i)
							cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: map[string]string{"k": name}}
							if _, err := client.CoreV1().ConfigMaps("durable").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
								return // the server is gone: unacknowledged, so unchecked
							}
							mu.Lock()
							acked = append(acked, name)
							mu.Unlock()
						}
					}()
				}
				// Killed at a moment of its choosing, writes in flight.
				time.Sleep(time.Duration(500+rand.IntN(2000)) * time.Millisecond)
				s.kill()
				cancel()
				wg.Wait()
			}
			s.start(flags...)
			client := adminClient(t, s)
			list, err := client.CoreV1().ConfigMaps("durable").List(context.Background(), metav1.ListOptions{})
			if err != nil {
				t.Fatal(err)
			}
			have := map[string]string{}
			for _, cm := range list.Items {
				have[cm.Name] = cm.Data["k"]
			}
			lost := 0
			for _, name := range acked {
				if have[name] != name {
					lost++
					if lost <= 5 {
						t.Errorf("acknowledged create of %s is lost", name)
					}
				}
			}
			t.Logf("%s: %d kills, %d creates acknowledged, %d lost, %d objects in all", kind, rounds, len(acked), lost, len(list.Items)-1)
			if lost > 0 || len(acked) < rounds {
				t.Fatalf("%d of %d acknowledged creates lost", lost, len(acked))
			}
			s.stop()
		})
	}
}

// adminClient is a client of the server as its admin, without a
// client-side rate limit.
func adminClient(t *testing.T, s *server) kubernetes.Interface {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", s.kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cfg.QPS, cfg.Burst = -1, 0
	cfg.Timeout = 10 * time.Second
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return client
}
