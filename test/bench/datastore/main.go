// Command datastore measures kubling server on each datastore, side by side
// in one run on one machine: ConfigMap creates per second, listing 1,000
// objects, a watch's delivery latency, and idle memory. It prints a table;
// it is a benchmark, not a test.
//
//	KUBLING_BIN=bin/kubling go run ./test/bench/datastore [-creates 1000] [-workers 8] [-idle 30s]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kubling/kubling/test/bench/benchutil"
	"github.com/kubling/kubling/test/dbserver"
)

type result struct {
	kind          string
	createsPerSec float64
	list          time.Duration
	watchP50      time.Duration
	watchP99      time.Duration
	kublingRSS    int // KiB
	dbRSS         int // KiB, the external server's
}

func main() {
	creates := flag.Int("creates", 1000, "ConfigMaps to create (and list)")
	workers := flag.Int("workers", 8, "concurrent creators")
	watches := flag.Int("watch-events", 100, "creates timed through a watch")
	idle := flag.Duration("idle", 30*time.Second, "idle time before reading memory")
	only := flag.String("only", "", "comma-separated kinds to run (sqlite,etcd,postgres,mariadb); all when empty")
	flag.Parse()
	bin := os.Getenv("KUBLING_BIN")
	if bin == "" {
		benchutil.Fatal("KUBLING_BIN is not set (run `make bench-datastore`)")
	}
	if os.Geteuid() != 0 {
		benchutil.Fatal("the benchmark starts kubling server and needs root")
	}
	var results []result
	for _, kind := range []string{"sqlite", "etcd", "postgres", "mariadb"} {
		if *only != "" && !slices.Contains(strings.Split(*only, ","), kind) {
			continue
		}
		fmt.Fprintf(os.Stderr, "bench: %s…\n", kind)
		results = append(results, measure(bin, kind, *creates, *workers, *watches, *idle))
	}
	host, _ := os.Hostname()
	fmt.Printf("\nkubling server --disable-agent per datastore: %d ConfigMap creates by %d workers, a list of them, %d creates through a watch; %s, %d CPUs, host %s\n\n",
		*creates, *workers, *watches, time.Now().Format("2006-01-02"), runtime.NumCPU(), host)
	fmt.Printf("| datastore | creates/s | list %d (median of 5) | watch delivery p50 | p99 | kubling RSS after %s idle | datastore server RSS |\n", *creates, *idle)
	fmt.Println("| --- | --- | --- | --- | --- | --- | --- |")
	for _, r := range results {
		db := "in kubling"
		if r.dbRSS > 0 {
			db = fmt.Sprintf("%d MB", r.dbRSS/1024)
		}
		fmt.Printf("| %s | %.0f | %d ms | %.1f ms | %.1f ms | %d MB | %s |\n", r.kind, r.createsPerSec, r.list.Milliseconds(),
			ms(r.watchP50), ms(r.watchP99), r.kublingRSS/1024, db)
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func measure(bin, kind string, creates, workers, watches int, idle time.Duration) result {
	dir, err := os.MkdirTemp("", "kubling-bench-ds-")
	if err != nil {
		benchutil.Fatal(err.Error())
	}
	defer os.RemoveAll(dir)
	var flags []string
	var db *dbserver.Server
	switch kind {
	case "etcd":
		flags = []string{"--cluster-init"}
	case "postgres", "mariadb":
		ds, err := dbserver.Init(kind, filepath.Join(dir, kind))
		if err != nil {
			benchutil.Fatal(err.Error())
		}
		if db, err = ds.Start(); err != nil {
			benchutil.Fatal(err.Error())
		}
		defer db.Stop()
		flags = ds.Flags
	}
	args := append([]string{"server", "--disable-agent", "--disable-snapshots", "--data-dir", filepath.Join(dir, "data"), "--write-kubeconfig", filepath.Join(dir, "kubeconfig.yaml")}, flags...)
	cmd := exec.Command(bin, args...)
	log, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		benchutil.Fatal(err.Error())
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		benchutil.Fatal(err.Error())
	}
	defer benchutil.Stop(cmd.Process)
	client := readyClient(filepath.Join(dir, "data", "server", "cred", "admin.kubeconfig"))
	ctx := context.Background()
	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "bench"}}, metav1.CreateOptions{}); err != nil {
		benchutil.Fatal(err.Error())
	}
	r := result{kind: kind}

	// Creates, by concurrent workers.
	var next atomic.Int64
	var wg sync.WaitGroup
	begin := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(creates) {
					return
				}
				cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%05d", i)}, Data: map[string]string{"k": strings.Repeat("v", 256)}}
				if _, err := client.CoreV1().ConfigMaps("bench").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
					benchutil.Fatal(err.Error())
				}
			}
		}()
	}
	wg.Wait()
	r.createsPerSec = float64(creates) / time.Since(begin).Seconds()

	// A list of them all.
	var lists []time.Duration
	for range 5 {
		begin := time.Now()
		l, err := client.CoreV1().ConfigMaps("bench").List(ctx, metav1.ListOptions{})
		if err != nil {
			benchutil.Fatal(err.Error())
		}
		lists = append(lists, time.Since(begin))
		if len(l.Items) < creates {
			benchutil.Fatal(fmt.Sprintf("listed %d of %d", len(l.Items), creates))
		}
	}
	slices.Sort(lists)
	r.list = lists[len(lists)/2]

	// Watch delivery: from the create request to its ADDED event.
	w, err := client.CoreV1().ConfigMaps("bench").Watch(ctx, metav1.ListOptions{LabelSelector: "watched=yes"})
	if err != nil {
		benchutil.Fatal(err.Error())
	}
	var lat []time.Duration
	for i := range watches {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("w-%05d", i), Labels: map[string]string{"watched": "yes"}}}
		begin := time.Now()
		if _, err := client.CoreV1().ConfigMaps("bench").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			benchutil.Fatal(err.Error())
		}
		for ev := range w.ResultChan() {
			if ev.Type == watch.Added && ev.Object.(*corev1.ConfigMap).Name == cm.Name {
				break
			}
		}
		lat = append(lat, time.Since(begin))
	}
	w.Stop()
	slices.Sort(lat)
	r.watchP50, r.watchP99 = lat[len(lat)/2], lat[len(lat)*99/100]

	time.Sleep(idle)
	r.kublingRSS = benchutil.RSSKB(cmd.Process.Pid)
	if db != nil {
		r.dbRSS = benchutil.TreeRSS(db.Pid()) // PostgreSQL forks a process per connection and worker
	}
	return r
}

func readyClient(kubeconfig string) kubernetes.Interface {
	var client kubernetes.Interface
	benchutil.WaitFor("apiserver ready", func() bool {
		cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			return false
		}
		cfg.QPS, cfg.Burst = -1, 0 // no client-side rate limit
		c, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			return false
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		body, err := c.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err != nil || string(body) != "ok" {
			return false
		}
		client = c
		return true
	})
	return client
}
