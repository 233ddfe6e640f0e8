// Command start measures how fast `kubling server --disable-agent` serves
// /readyz, cold (empty data dir) and warm (restart on the same data dir), and
// its memory after idling. It prints a table; it is a benchmark, not a test.
//
//	KUBLING_BIN=bin/kubling go run ./test/bench/start [-runs 3] [-idle 60s]
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kubling/kubling/test/bench/benchutil"
)

func main() {
	runs := flag.Int("runs", 3, "cold and warm starts to measure each")
	idle := flag.Duration("idle", 60*time.Second, "idle time before reading memory")
	flag.Parse()
	bin := os.Getenv("KUBLING_BIN")
	if bin == "" {
		fatal("KUBLING_BIN is not set (run `make bench-start`)")
	}
	if os.Geteuid() != 0 {
		fatal("the benchmark starts kubling server and needs root")
	}
	var cold, warm []time.Duration
	var mem map[string]int
	for i := 0; i < *runs; i++ {
		dir, err := os.MkdirTemp("", "kubling-bench-")
		if err != nil {
			fatal(err.Error())
		}
		d, p := start(bin, dir)
		cold = append(cold, d)
		benchutil.Stop(p)
		d, p = start(bin, dir)
		warm = append(warm, d)
		if i == *runs-1 {
			time.Sleep(*idle)
			mem = memory(p.Pid)
		}
		benchutil.Stop(p)
		os.RemoveAll(dir)
	}
	host, _ := os.Hostname()
	fmt.Printf("\nkubling server --disable-agent, %d runs each, %s, %d CPUs, host %s\n\n", *runs, time.Now().Format("2006-01-02"), numCPU(), host)
	fmt.Println("| measure | median | min | max |")
	fmt.Println("| --- | --- | --- | --- |")
	row("cold start to /readyz OK", cold)
	row("warm start to /readyz OK", warm)
	fmt.Printf("| RSS after %s idle | %d MB | | |\n", *idle, mem["VmRSS"]/1024)
	fmt.Printf("| of which anonymous (heap, stacks) | %d MB | | |\n", mem["RssAnon"]/1024)
	fmt.Printf("| of which file-backed (binary pages) | %d MB | | |\n", mem["RssFile"]/1024)
	fmt.Printf("| peak RSS (VmHWM) | %d MB | | |\n", mem["VmHWM"]/1024)
}

// start launches the server and returns the time until /readyz answers ok.
func start(bin, dir string) (time.Duration, *os.Process) {
	begin := time.Now()
	cmd := exec.Command(bin, "server", "--disable-agent", "--data-dir", filepath.Join(dir, "data"), "--write-kubeconfig", filepath.Join(dir, "kubeconfig.yaml"))
	log, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		fatal(err.Error())
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		fatal(err.Error())
	}
	admin := filepath.Join(dir, "data", "server", "cred", "admin.kubeconfig")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	for ctx.Err() == nil {
		if readyz(ctx, admin) {
			return time.Since(begin), cmd.Process
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Kill()
	fatal("server not ready within 3m; see " + log.Name())
	return 0, nil
}

func readyz(ctx context.Context, kubeconfig string) bool {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return false
	}
	client, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return false
	}
	client.Timeout = time.Second
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, cfg.Host+"/readyz", nil)
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// memory reads the Vm*/Rss* lines (kB) of a process's status.
func memory(pid int) map[string]int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		fatal(err.Error())
	}
	m := map[string]int{}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && (strings.HasPrefix(f[0], "Vm") || strings.HasPrefix(f[0], "Rss")) {
			v, _ := strconv.Atoi(f[1])
			m[strings.TrimSuffix(f[0], ":")] = v
		}
	}
	return m
}

func row(name string, ds []time.Duration) {
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	r := func(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }
	fmt.Printf("| %s | %s | %s | %s |\n", name, r(ds[len(ds)/2]), r(ds[0]), r(ds[len(ds)-1]))
}

func numCPU() int {
	b, _ := os.ReadFile("/proc/cpuinfo")
	return strings.Count(string(b), "processor\t:")
}

func fatal(msg string) {
	fmt.Fprintln(os.Stderr, "bench:", msg)
	os.Exit(1)
}
