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
	bin, images := os.Getenv("KUBLING_BIN"), os.Getenv("KUBLING_TEST_IMAGES")
	if bin == "" || images == "" {
		benchutil.Fatal("KUBLING_BIN and KUBLING_TEST_IMAGES must be set (run `make bench-node`)")
	}
	if os.Geteuid() != 0 {
		benchutil.Fatal("the benchmark starts kubling server and needs root")
	}
	dir, err := os.MkdirTemp("", "kubling-bench-node-")
	if err != nil {
		benchutil.Fatal(err.Error())
	}
	dataDir := filepath.Join(dir, "data")
	defer func() { benchutil.Killall(dataDir); os.RemoveAll(dir) }()
	benchutil.CopyImages(images, dataDir, "busybox.tar")

	var rows [][2]string
	begin := time.Now()
	log, err := os.Create(filepath.Join(dir, "server.log"))
	benchutil.Must(err)
	cmd := exec.Command(bin, "server", "--data-dir", dataDir, "--write-kubeconfig", filepath.Join(dir, "kubeconfig.yaml"))
	cmd.Stdout, cmd.Stderr = log, log
	benchutil.Must(cmd.Start())
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()

	client := benchutil.WaitClient(filepath.Join(dataDir, "server", "cred", "admin.kubeconfig"))
	ctx := context.Background()
	benchutil.WaitFor("node Ready", func() bool { return benchutil.NodeReady(ctx, client, "") })
	rows = append(rows, [2]string{"start to node Ready", benchutil.Secs(time.Since(begin))})
	benchutil.WaitFor("CoreDNS Ready", func() bool {
		d, err := client.AppsV1().Deployments("kube-system").Get(ctx, "coredns", metav1.GetOptions{})
		return err == nil && d.Status.ReadyReplicas >= 1
	})
	rows = append(rows, [2]string{"start to CoreDNS Ready", benchutil.Secs(time.Since(begin))})

	time.Sleep(*idle)
	mem := benchutil.Status(cmd.Process.Pid)
	kubling := mem["VmRSS"]
	containerd, shims := benchutil.PayloadRSS(dataDir)
	rows = append(rows,
		[2]string{fmt.Sprintf("kubling RSS after %s idle", *idle), benchutil.MB(kubling)},
		[2]string{"of which anonymous (heap, stacks)", benchutil.MB(mem["RssAnon"])},
		[2]string{"of which file-backed (binary pages)", benchutil.MB(mem["RssFile"])},
		[2]string{"containerd RSS", benchutil.MB(containerd)},
		[2]string{"kubling + containerd", benchutil.MB(kubling + containerd)},
		[2]string{"runc shims RSS (CoreDNS pod)", benchutil.MB(shims)},
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
	rows = append(rows, [2]string{fmt.Sprintf("%d-replica Deployment to all Running", *pods), benchutil.Secs(time.Since(scaleBegin))})
	time.Sleep(10 * time.Second)
	rows = append(rows, [2]string{fmt.Sprintf("kubling RSS with %d pods", *pods), benchutil.MB(benchutil.RSSKB(cmd.Process.Pid))})

	benchutil.Table("kubling server with its node", rows)
}
