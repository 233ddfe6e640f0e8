package benchutil

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Figure is one measured value, kept for the table `make bench` ends with.
type Figure struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
	// Max is the project's goal for it (0: none), in Unit.
	Max float64 `json:"max,omitempty"`
}

// Report collects a benchmark's figures, prints them and records them.
type Report struct {
	bench, title string
	figs         []Figure
}

func NewReport(bench, title string) *Report { return &Report{bench: bench, title: title} }

// Add records a figure; max is its goal (0: none).
func (r *Report) Add(name string, value float64, unit string, max float64) {
	r.figs = append(r.figs, Figure{Name: name, Value: value, Unit: unit, Max: max})
}

// MB adds a memory figure given in KiB.
func (r *Report) MB(name string, kb int, max float64) { r.Add(name, float64(kb)/1024, "MB", max) }

// Print writes the table and, when KUBLING_BENCH_OUT names a folder, the
// figures as <bench>.json there for the summary (test/bench/summary).
func (r *Report) Print() {
	rows := make([][2]string, 0, len(r.figs))
	for _, f := range r.figs {
		rows = append(rows, [2]string{f.Name, Format(f.Value, f.Unit)})
	}
	Table(r.title, rows)
	out := os.Getenv("KUBLING_BENCH_OUT")
	if out == "" {
		return
	}
	Must(os.MkdirAll(out, 0o755))
	b, err := json.MarshalIndent(r.figs, "", "  ")
	Must(err)
	Must(os.WriteFile(filepath.Join(out, r.bench+".json"), b, 0o644))
}

// Format prints a value in its unit with the precision the unit needs.
func Format(v float64, unit string) string {
	switch unit {
	case "s", "×":
		return fmt.Sprintf("%.1f %s", v, unit)
	case "MB":
		return fmt.Sprintf("%.0f MB", v)
	default:
		return fmt.Sprintf("%.0f %s", v, unit)
	}
}

// PSSKB is a process's proportional set size in KiB (shared pages divided
// among the processes that map them), from smaps_rollup; 0 if it is gone.
func PSSKB(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "Pss:" {
			v, _ := strconv.Atoi(f[1])
			return v
		}
	}
	return 0
}

// Mem is a group of processes' memory in KiB.
type Mem struct{ RSS, PSS, Anon int }

func (m *Mem) add(pid int) {
	s := Status(pid)
	m.RSS += s["VmRSS"]
	m.Anon += s["RssAnon"]
	m.PSS += PSSKB(pid)
}

// Process is one process's memory.
func Process(pid int) Mem {
	var m Mem
	m.add(pid)
	return m
}

// NodeMemory splits the processes of a node's payload (under dataDir) into
// containerd, the runc shims, and the containers' own processes (every
// descendant of a shim: pause and the workloads, CoreDNS here).
func NodeMemory(dataDir string) (containerd, shims, pods Mem) {
	parent := Parents()
	shimPIDs := map[int]bool{}
	for _, pid := range PIDsUnder(dataDir) {
		exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		switch filepath.Base(exe) {
		case "containerd":
			containerd.add(pid)
		case "containerd-shim-runc-v2":
			shims.add(pid)
			shimPIDs[pid] = true
		}
	}
	for pid := range parent {
		for p := parent[pid]; p > 1; p = parent[p] {
			if shimPIDs[p] {
				pods.add(pid)
				break
			}
		}
	}
	return containerd, shims, pods
}

// Parents maps every process to its parent, from /proc/<pid>/stat.
func Parents() map[int]int {
	parent := map[int]int{}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		// pid (comm) state ppid …; comm may hold spaces.
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		if len(f) > 1 {
			parent[pid], _ = strconv.Atoi(f[1])
		}
	}
	return parent
}

// TreeRSS sums the RSS of pid and its descendants, in KiB.
func TreeRSS(pid int) int {
	parent := Parents()
	total := 0
	for p := range parent {
		for q := p; q > 0; q = parent[q] {
			if q == pid {
				total += RSSKB(p)
				break
			}
		}
	}
	return total
}

// LogSize is a log file's lines and bytes now.
func LogSize(path string) (lines, bytes int) {
	b, _ := os.ReadFile(path)
	return strings.Count(string(b), "\n"), len(b)
}

// ServerReadyz starts `kubling server --disable-agent` on a data dir under
// dir (argv: the binary, or an emulator and the binary) and returns the time
// from exec until /readyz answers 200 to the admin, and the process.
func ServerReadyz(argv []string, dir string, timeout time.Duration) (time.Duration, *os.Process, error) {
	begin := time.Now()
	args := append(append([]string(nil), argv[1:]...), "server", "--disable-agent", "--data-dir", filepath.Join(dir, "data"), "--write-kubeconfig", filepath.Join(dir, "kubeconfig.yaml"))
	cmd := exec.Command(argv[0], args...)
	log, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		return 0, nil, err
	}
	defer log.Close()
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return 0, nil, err
	}
	admin := filepath.Join(dir, "data", "server", "cred", "admin.kubeconfig")
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for ctx.Err() == nil {
		if readyz(ctx, admin) {
			return time.Since(begin), cmd.Process, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Kill()
	cmd.Wait()
	return 0, nil, fmt.Errorf("server not ready within %s; see %s", timeout, log.Name())
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
