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
	"syscall"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/kubling/kubling/test/bench/benchutil"
)

func main() {
	idle := flag.Duration("idle", 60*time.Second, "idle time before reading memory")
	pods := flag.Int("pods", 30, "replicas of the scale-up Deployment")
	flag.Parse()
	bin, images := benchutil.BinAndImages("node")
	dir, err := os.MkdirTemp("", "kubling-bench-node-")
	if err != nil {
		benchutil.Fatal(err.Error())
	}
	dataDir := filepath.Join(dir, "data")
	defer func() { benchutil.Killall(dataDir); os.RemoveAll(dir) }()
	benchutil.CopyImages(images, dataDir, "busybox.tar")

	r := benchutil.NewReport("node", "kubling server with its node")
	begin := time.Now()
	logPath := filepath.Join(dir, "server.log")
	log, err := os.Create(logPath)
	benchutil.Must(err)
	cmd := exec.Command(bin, "server", "--data-dir", dataDir, "--write-kubeconfig", filepath.Join(dir, "kubeconfig.yaml"))
	cmd.Stdout, cmd.Stderr = log, log
	benchutil.Must(cmd.Start())
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	client := benchutil.WaitClient(filepath.Join(dataDir, "server", "cred", "admin.kubeconfig"))
	ctx := context.Background()
	benchutil.WaitFor("node Ready", func() bool { return benchutil.NodeReady(ctx, client, "") })
	r.Add("server: start to node Ready (cold)", time.Since(begin).Seconds(), "s", 6)
	benchutil.WaitFor("CoreDNS Ready", func() bool {
		d, err := client.AppsV1().Deployments("kube-system").Get(ctx, "coredns", metav1.GetOptions{})
		return err == nil && d.Status.ReadyReplicas >= 1
	})
	r.Add("server: start to CoreDNS Ready", time.Since(begin).Seconds(), "s", 0)
	// Log written while idle, from 10 s after CoreDNS is Ready (start-up
	// lines done), scaled to an hour.
	time.Sleep(10 * time.Second)
	lines0, bytes0 := benchutil.LogSize(logPath)
	idleBegin := time.Now()
	time.Sleep(*idle)
	lines1, bytes1 := benchutil.LogSize(logPath)
	perHour := time.Hour.Seconds() / time.Since(idleBegin).Seconds()
	kubling := benchutil.Process(cmd.Process.Pid)
	containerd, shims, podProcs := benchutil.NodeMemory(dataDir)
	file := benchutil.Status(cmd.Process.Pid)["RssFile"]
	r.MB("server: kubling RSS", kubling.RSS, 0)
	r.MB("server: kubling anonymous (heap, stacks)", kubling.Anon, 0)
	r.MB("server: kubling file-backed (binary pages)", file, 0)
	r.MB("server: kubling PSS", kubling.PSS, 0)
	r.MB("server: containerd RSS", containerd.RSS, 0)
	r.MB("server: runc shims RSS", shims.RSS, 0)
	r.MB("server: pods' processes RSS (CoreDNS, pause)", podProcs.RSS, 0)
	r.MB("server + node + CoreDNS RSS", kubling.RSS+containerd.RSS+shims.RSS+podProcs.RSS, 400)
	r.MB("server + node + CoreDNS PSS", kubling.PSS+containerd.PSS+shims.PSS+podProcs.PSS, 0)
	r.MB("server + node + CoreDNS anonymous", kubling.Anon+containerd.Anon+shims.Anon+podProcs.Anon, 0)
	r.Add("server: log lines per idle hour", float64(lines1-lines0)*perHour, "lines", 0)
	r.Add("server: log kB per idle hour", float64(bytes1-bytes0)*perHour/1024, "kB", 0)
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
	benchutil.Must(err)
	benchutil.WaitFor(fmt.Sprintf("%d pods Running", *pods), func() bool {
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
	r.Add(fmt.Sprintf("server: %d-replica Deployment to all Running", *pods), time.Since(scaleBegin).Seconds(), "s", 0)
	time.Sleep(10 * time.Second)
	r.MB(fmt.Sprintf("server: kubling RSS with %d pods", *pods), benchutil.RSSKB(cmd.Process.Pid), 0)
	r.Print()
}
