// Command start measures how fast `kubling server --disable-agent` serves
// /readyz, cold (empty data dir) and warm (restart on the same data dir), and
// its memory after idling. It prints a table; it is a benchmark, not a test.
//
//	KUBLING_BIN=bin/kubling go run ./test/bench/start [-runs 3] [-idle 60s]
package main

import (
	"flag"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

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
	defer func() {
		r := benchutil.NewReport("start", "kubling server --disable-agent (control plane alone)")
		r.Add("control plane: cold start to /readyz (median)", median(cold).Seconds(), "s", 0)
		r.Add("control plane: warm start to /readyz (median)", median(warm).Seconds(), "s", 0)
		r.MB("control plane: RSS idle", mem["VmRSS"], 0)
		r.MB("control plane: anonymous idle", mem["RssAnon"], 0)
		r.Print()
	}()
	fmt.Printf("| RSS after %s idle | %d MB | | |\n", *idle, mem["VmRSS"]/1024)
	fmt.Printf("| of which anonymous (heap, stacks) | %d MB | | |\n", mem["RssAnon"]/1024)
	fmt.Printf("| of which file-backed (binary pages) | %d MB | | |\n", mem["RssFile"]/1024)
	fmt.Printf("| peak RSS (VmHWM) | %d MB | | |\n", mem["VmHWM"]/1024)
}

// start launches the server and returns the time until /readyz answers ok.
func start(bin, dir string) (time.Duration, *os.Process) {
	d, p, err := benchutil.ServerReadyz([]string{bin}, dir, 3*time.Minute)
	if err != nil {
		fatal(err.Error())
	}
	return d, p
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

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
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
