// Package benchutil holds what kubling's benchmarks share: waiting, reading
// memory from /proc, cleaning up after a run, and formatting.
package benchutil

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// WaitClient returns a client once the kubeconfig can be read.
func WaitClient(kubeconfig string) kubernetes.Interface {
	var client kubernetes.Interface
	WaitFor("kubeconfig "+kubeconfig, func() bool {
		cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			return false
		}
		client, err = kubernetes.NewForConfig(cfg)
		return err == nil
	})
	return client
}

// NodeReady says whether the node called name (any first node when name is
// empty) reports Ready.
func NodeReady(ctx context.Context, client kubernetes.Interface, name string) bool {
	nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return false
	}
	for _, n := range nodes.Items {
		if name != "" && n.Name != name {
			continue
		}
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				return true
			}
		}
	}
	return false
}

// WaitFor polls ok every 100 ms for up to 5 minutes, or gives up the run.
func WaitFor(what string, ok func() bool) {
	deadline := time.Now().Add(5 * time.Minute)
	for time.Now().Before(deadline) {
		if ok() {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	Fatal(what + ": not reached within 5m")
}

// PIDsUnder lists the processes whose executable lies under dir (the
// payload's containerd and shims live in the data dir).
func PIDsUnder(dir string) []int {
	var out []int
	procs, _ := filepath.Glob("/proc/[0-9]*/exe")
	for _, p := range procs {
		if exe, err := os.Readlink(p); err == nil && strings.HasPrefix(exe, dir+"/") {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
			out = append(out, pid)
		}
	}
	return out
}

// PayloadRSS sums the RSS of the containerd and shim processes under dir.
func PayloadRSS(dir string) (containerd, shims int) {
	for _, pid := range PIDsUnder(dir) {
		exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		switch filepath.Base(exe) {
		case "containerd":
			containerd += RSSKB(pid)
		case "containerd-shim-runc-v2":
			shims += RSSKB(pid)
		}
	}
	return containerd, shims
}

// RSSKB is a process's resident set size in KiB (0 if it is gone).
func RSSKB(pid int) int { return Status(pid)["VmRSS"] }

// Status returns the KiB figures of /proc/<pid>/status (VmRSS, RssAnon,
// RssFile, …).
func Status(pid int) map[string]int {
	out := map[string]int{}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return out
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[2] == "kB" {
			v, _ := strconv.Atoi(f[1])
			out[strings.TrimSuffix(f[0], ":")] = v
		}
	}
	return out
}

// Killall runs scripts/kubling-killall.sh for a data dir.
func Killall(dataDir string) {
	killall := exec.Command("scripts/kubling-killall.sh")
	killall.Env = append(os.Environ(), "KUBLING_DATA_DIR="+dataDir)
	_ = killall.Run()
}

// CopyImages puts the test image archives into a data dir's airgap folder.
func CopyImages(imagesDir, dataDir string, names ...string) {
	airgap := filepath.Join(dataDir, "agent", "images")
	Must(os.MkdirAll(airgap, 0o755))
	for _, img := range names {
		b, err := os.ReadFile(filepath.Join(imagesDir, img))
		Must(err)
		Must(os.WriteFile(filepath.Join(airgap, img), b, 0o644))
	}
}

// Table prints a titled two-column Markdown table.
func Table(title string, rows [][2]string) {
	host, _ := os.Hostname()
	fmt.Printf("\n%s, %s, host %s\n\n| measure | value |\n| --- | --- |\n", title, time.Now().Format("2006-01-02"), host)
	for _, r := range rows {
		fmt.Printf("| %s | %s |\n", r[0], r[1])
	}
}

func Secs(d time.Duration) string { return fmt.Sprintf("%.1f s", d.Seconds()) }
func MB(kb int) string            { return fmt.Sprintf("%d MB", kb/1024) }

// Stop ends a process with SIGTERM, and SIGKILL if it is still there a
// minute later.
func Stop(p *os.Process) {
	p.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { p.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		p.Kill()
		<-done
	}
}

func Must(err error) {
	if err != nil {
		Fatal(err.Error())
	}
}

func Fatal(msg string) {
	fmt.Fprintln(os.Stderr, "bench:", msg)
	os.Exit(1)
}
