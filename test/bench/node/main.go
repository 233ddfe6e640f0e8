// Command node measures `kubling server` with its node: time from exec to
// the node Ready and to CoreDNS Ready, the memory of kubling and containerd
// after idling, and how long 30 pods of one Deployment take to run. It prints
// a table; it is a benchmark, not a test.
//
//	KUBLING_BIN=bin/kubling KUBLING_TEST_IMAGES=build/test-images go run ./test/bench/node
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
)

func main() {
	idle := flag.Duration("idle", 60*time.Second, "idle time before reading memory")
	pods := flag.Int("pods", 30, "replicas of the scale-up Deployment")
	flag.Parse()
	bin, images := os.Getenv("KUBLING_BIN"), os.Getenv("KUBLING_TEST_IMAGES")
	if bin == "" || images == "" {
		fatal("KUBLING_BIN and KUBLING_TEST_IMAGES must be set (run `make bench-node`)")
	}
	if os.Geteuid() != 0 {
		fatal("the benchmark starts kubling server and needs root")
	}
	dir, err := os.MkdirTemp("", "kubling-bench-node-")
	if err != nil {
		fatal(err.Error())
	}
	dataDir := filepath.Join(dir, "data")
	defer cleanup(dataDir, dir)
	airgap := filepath.Join(dataDir, "agent", "images")
	must(os.MkdirAll(airgap, 0o755))
	for _, img := range []string{"busybox.tar", "coredns.tar"} {
		b, err := os.ReadFile(filepath.Join(images, img))
		must(err)
		must(os.WriteFile(filepath.Join(airgap, img), b, 0o644))
	}

	var rows [][2]string
	begin := time.Now()
	log, err := os.Create(filepath.Join(dir, "server.log"))
	must(err)
	cmd := exec.Command(bin, "server", "--data-dir", dataDir, "--write-kubeconfig", filepath.Join(dir, "kubeconfig.yaml"))
	cmd.Stdout, cmd.Stderr = log, log
	must(cmd.Start())
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()

	client := waitClient(filepath.Join(dataDir, "server", "cred", "admin.kubeconfig"))
	ctx := context.Background()
	waitFor("node Ready", func() bool {
		nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil || len(nodes.Items) == 0 {
			return false
		}
		for _, c := range nodes.Items[0].Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				return true
			}
		}
		return false
	})
	rows = append(rows, [2]string{"start to node Ready", secs(time.Since(begin))})
	waitFor("CoreDNS Ready", func() bool {
		d, err := client.AppsV1().Deployments("kube-system").Get(ctx, "coredns", metav1.GetOptions{})
		return err == nil && d.Status.ReadyReplicas >= 1
	})
	rows = append(rows, [2]string{"start to CoreDNS Ready", secs(time.Since(begin))})

	time.Sleep(*idle)
	kubling := rssKB(cmd.Process.Pid)
	containerd, shims := 0, 0
	for _, pid := range pidsUnder(dataDir) {
		exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		switch filepath.Base(exe) {
		case "containerd":
			containerd += rssKB(pid)
		case "containerd-shim-runc-v2":
			shims += rssKB(pid)
		}
	}
	rows = append(rows,
		[2]string{fmt.Sprintf("kubling RSS after %s idle", *idle), mb(kubling)},
		[2]string{"containerd RSS", mb(containerd)},
		[2]string{"kubling + containerd", mb(kubling + containerd)},
		[2]string{"runc shims RSS (CoreDNS pod)", mb(shims)},
	)

	scaleBegin := time.Now()
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "scale", Namespace: "default"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(int32(*pods)),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "scale"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "scale"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "c", Image: "kubling.test/busybox:1", ImagePullPolicy: corev1.PullNever, Command: []string{"sleep", "100000"},
				}}},
			},
		},
	}
	_, err = client.AppsV1().Deployments("default").Create(ctx, d, metav1.CreateOptions{})
	must(err)
	waitFor(fmt.Sprintf("%d pods Running", *pods), func() bool {
		list, err := client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=scale"})
		if err != nil {
			return false
		}
		running := 0
		for _, p := range list.Items {
			if p.Status.Phase == corev1.PodRunning {
				running++
			}
		}
		return running == *pods
	})
	rows = append(rows, [2]string{fmt.Sprintf("%d-replica Deployment to all Running", *pods), secs(time.Since(scaleBegin))})
	time.Sleep(10 * time.Second)
	rows = append(rows, [2]string{fmt.Sprintf("kubling RSS with %d pods", *pods), mb(rssKB(cmd.Process.Pid))})

	host, _ := os.Hostname()
	fmt.Printf("\nkubling server with its node, %s, host %s\n\n| measure | value |\n| --- | --- |\n", time.Now().Format("2006-01-02"), host)
	for _, r := range rows {
		fmt.Printf("| %s | %s |\n", r[0], r[1])
	}
}

func waitClient(kubeconfig string) kubernetes.Interface {
	var client kubernetes.Interface
	waitFor("admin kubeconfig", func() bool {
		cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			return false
		}
		client, err = kubernetes.NewForConfig(cfg)
		return err == nil
	})
	return client
}

func waitFor(what string, ok func() bool) {
	deadline := time.Now().Add(5 * time.Minute)
	for time.Now().Before(deadline) {
		if ok() {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	fatal(what + ": not reached within 5m")
}

func pidsUnder(dir string) []int {
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

func rssKB(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			v, _ := strconv.Atoi(f[1])
			return v
		}
	}
	return 0
}

func cleanup(dataDir, dir string) {
	killall := exec.Command("scripts/kubling-killall.sh")
	killall.Env = append(os.Environ(), "KUBLING_DATA_DIR="+dataDir)
	killall.Run()
	os.RemoveAll(dir)
}

func secs(d time.Duration) string { return fmt.Sprintf("%.1f s", d.Seconds()) }
func mb(kb int) string            { return fmt.Sprintf("%d MB", kb/1024) }

func must(err error) {
	if err != nil {
		fatal(err.Error())
	}
}

func fatal(msg string) {
	fmt.Fprintln(os.Stderr, "bench:", msg)
	os.Exit(1)
}
