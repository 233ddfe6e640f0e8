// Command netpol measures NetworkPolicy on `kubling server`'s node: the
// time from a default-deny policy's creation to traffic blocked, with 50 and
// 500 pods selected by it, and the memory the NetworkPolicy controller,
// ServiceLB and local storage each add to an idle server (the same server
// started with --disable-network-policy, --disable servicelb or --disable
// local-storage). It prints a table; it
// is a benchmark, not a test.
//
//	KUBLING_BIN=bin/kubling KUBLING_TEST_IMAGES=build/test-images go run ./test/bench/netpol
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/kubling/kubling/test/bench/benchutil"
)

func main() {
	idle := flag.Duration("idle", 30*time.Second, "idle time before reading memory")
	podCounts := flag.String("pods", "50,500", "pods the policy selects, one measurement each")
	trials := flag.Int("trials", 3, "policies created per pod count (the median is reported)")
	samples := flag.Int("samples", 3, "server starts per idle-memory figure (the median is reported)")
	flag.Parse()
	bin, images := benchutil.BinAndImages("netpol")
	var counts []int
	for _, f := range strings.Split(*podCounts, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			benchutil.Fatal("-pods: want counts such as 50,500")
		}
		counts = append(counts, n)
	}
	r := benchutil.NewReport("netpol", "NetworkPolicy on kubling server's node")

	// The same server, idle, with everything on and with one feature off
	// (the median of -samples starts each: one start's RSS varies by
	// several MB).
	sample := func(n int, extra ...string) []int {
		var rss []int
		for range n {
			rss = append(rss, idleRSS(bin, images, *idle, 0, extra...))
		}
		return rss
	}
	off := median(sample(*samples, "--disable-network-policy"))
	lbOff := median(sample(*samples, "--disable", "servicelb"))
	lsOff := median(sample(*samples, "--disable", "local-storage"))
	// The last server with everything on stays for the latencies.
	onSamples := sample(*samples - 1)
	on, stop := idleRSSRunning(bin, images, *idle, slices.Max(counts))
	allOn := median(append(onSamples, on.rss))
	r.MB("server: kubling RSS idle, everything on", allOn, 0)
	r.MB("server: kubling RSS idle, NetworkPolicy off", off, 0)
	r.MB("server: kubling RSS idle, ServiceLB off", lbOff, 0)
	r.MB("server: RSS NetworkPolicy adds", allOn-off, 0)
	r.MB("server: kubling RSS idle, local storage off", lsOff, 0)
	r.MB("server: RSS ServiceLB adds", allOn-lbOff, 0)
	r.MB("server: RSS local storage adds", allOn-lsOff, 0)
	for _, n := range counts {
		lat, err := on.latencies(n, *trials)
		if err != nil {
			// Keep the figures measured so far.
			fmt.Fprintf(os.Stderr, "bench: %d pods: %v\n", n, err)
			break
		}
		r.Add(fmt.Sprintf("policy created to traffic blocked, %d pods selected (median of %d)", n, len(lat)), median(lat).Seconds(), "s", 0)
	}
	r.MB(fmt.Sprintf("server: kubling RSS with %d pods", slices.Max(counts)), benchutil.RSSKB(on.PID), 0)
	stop()
	r.Print()
}

// running is a started server with its node.
type running struct {
	*benchutil.Server
	rss int
}

// start runs kubling server on a fresh data dir and waits for CoreDNS.
func start(bin, images string, extra ...string) (*running, func()) {
	s, stop := benchutil.StartServer(bin, images, "netpol", extra...)
	return &running{Server: s}, stop
}

// idleRSS starts a server, lets it idle and returns kubling's RSS.
func idleRSS(bin, images string, idle time.Duration, maxPods int, extra ...string) int {
	s, stop := idleRSSRunning(bin, images, idle, maxPods, extra...)
	stop()
	return s.rss
}

func idleRSSRunning(bin, images string, idle time.Duration, maxPods int, extra ...string) (*running, func()) {
	if maxPods > 100 {
		// One node: a pod CIDR and a pod limit for them all.
		extra = append(extra, "--kube-controller-manager-arg", "node-cidr-mask-size-ipv4=22", "--kubelet-arg", fmt.Sprintf("max-pods=%d", maxPods+20))
	}
	s, stop := start(bin, images, extra...)
	time.Sleep(idle)
	s.rss = benchutil.RSSKB(s.PID)
	return s, stop
}

const ns = "bench"

// latencies scales the selected pods to n and, trials times, creates a
// default-deny ingress policy and finds when the probe's last request got
// through: the probe pod (another namespace) asks the web pod every 50 ms
// and logs each outcome, timestamped by the container runtime.
func (s *running) latencies(n, trials int) ([]time.Duration, error) {
	ctx := context.Background()
	if _, err := s.Client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); err != nil {
		s.setUp(ctx)
	}
	_, err := s.Client.AppsV1().Deployments(ns).Patch(ctx, "selected", "application/merge-patch+json",
		[]byte(fmt.Sprintf(`{"spec":{"replicas":%d}}`, n-1)), metav1.PatchOptions{}) // and the web pod
	benchutil.Must(err)
	// Hundreds of pods start at about 100 a minute on 2 cores, the last
	// ones' status slower still: longer than benchutil.WaitFor's 5 minutes.
	deadline := time.Now().Add(20 * time.Minute)
	for running := 0; running != n; time.Sleep(time.Second) {
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%d of %d pods Running after 20m", running, n)
		}
		list, err := s.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			continue
		}
		running = 0
		for _, p := range list.Items {
			if p.Status.Phase == corev1.PodRunning && p.Status.PodIP != "" && p.DeletionTimestamp == nil {
				running++
			}
		}
	}
	var out []time.Duration
	for range trials {
		// Allowed again, and seen to be.
		_ = s.Client.NetworkingV1().NetworkPolicies(ns).Delete(ctx, "deny", metav1.DeleteOptions{})
		benchutil.WaitFor("the probe getting through", func() bool {
			last, ok := s.lastOK(time.Now().Add(-500 * time.Millisecond))
			return ok && !last.IsZero()
		})
		time.Sleep(2 * time.Second)
		created := time.Now()
		_, err := s.Client.NetworkingV1().NetworkPolicies(ns).Create(ctx, &networkingv1.NetworkPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: "deny"},
			Spec:       networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}},
		}, metav1.CreateOptions{})
		benchutil.Must(err)
		// Blocked once two timeouts have passed with no success.
		var last time.Time
		benchutil.WaitFor("traffic blocked", func() bool {
			l, ok := s.lastOK(created)
			// Two of the probe's timeouts without a success (its
			// log may lag a moment behind).
			if ok && time.Since(created) > 3*time.Second && time.Since(l) > 2500*time.Millisecond {
				last = l
				return true
			}
			return false
		})
		lat := last.Sub(created)
		if lat < 0 {
			lat = 0 // blocked before the first request after creation
		}
		out = append(out, lat)
	}
	_ = s.Client.NetworkingV1().NetworkPolicies(ns).Delete(ctx, "deny", metav1.DeleteOptions{})
	return out, nil
}

// setUp makes the namespace, the web pod, the Deployment of pods the
// policy selects besides it, and the probe in another namespace.
func (s *running) setUp(ctx context.Context) {
	for _, name := range []string{ns, "probe"} {
		_, err := s.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
		benchutil.Must(err)
	}
	busybox := func(name string, args ...string) corev1.Container {
		return corev1.Container{Name: name, Image: "kubling.test/busybox:1", ImagePullPolicy: corev1.PullNever, Command: args}
	}
	web, err := s.Client.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{busybox("web", "sh", "-c",
			"mkdir -p /www && echo web > /www/index.html && exec httpd -f -p 8080 -h /www")}},
	}, metav1.CreateOptions{})
	benchutil.Must(err)
	_, err = s.Client.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "selected"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(int32(0)),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "selected"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "selected"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{busybox("c", "sleep", "1000000")}},
			},
		},
	}, metav1.CreateOptions{})
	benchutil.Must(err)
	var ip string
	benchutil.WaitFor("the web pod's address", func() bool {
		p, err := s.Client.CoreV1().Pods(ns).Get(ctx, web.Name, metav1.GetOptions{})
		if err == nil {
			ip = p.Status.PodIP
		}
		return ip != ""
	})
	_, err = s.Client.CoreV1().Pods("probe").Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "probe"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{busybox("probe", "sh", "-c",
			"while true; do if timeout 1 wget -q -O /dev/null http://"+ip+":8080/; then echo ok; else echo blocked; fi; sleep 0.05; done")}},
	}, metav1.CreateOptions{})
	benchutil.Must(err)
}

// lastOK is the time of the probe's last success logged after since, if
// it logged one.
func (s *running) lastOK(since time.Time) (time.Time, bool) {
	out, err := s.Kubectl("logs", "-n", "probe", "probe", "--timestamps", "--since-time", since.UTC().Format(time.RFC3339Nano))
	if err != nil {
		return time.Time{}, false
	}
	var last time.Time
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		ts, what, _ := strings.Cut(sc.Text(), " ")
		t, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil || t.Before(since) {
			continue
		}
		if what == "ok" {
			last = t
		}
	}
	return last, true
}

func median[T int | time.Duration](d []T) T {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}
