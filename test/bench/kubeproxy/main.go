// Command kubeproxy compares kube-proxy's iptables and nftables modes on
// `kubling server`'s node, the measure issue 25 sets before nftables may
// become the default: with -services Services present, the time from
// creating them to the last one answering, the time a new Service takes to
// answer (the median of -samples), and kubling's RSS. Each Service is a
// ClusterIP in front of one busybox httpd pod, asked from the host. It
// prints a table; it is a benchmark, not a test.
//
//	KUBLING_BIN=bin/kubling KUBLING_TEST_IMAGES=build/test-images go run ./test/bench/kubeproxy
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/kubling/kubling/test/bench/benchutil"
)

func main() {
	services := flag.Int("services", 200, "Services present while measuring")
	samples := flag.Int("samples", 5, "new Services timed per mode (the median is reported)")
	modes := flag.String("modes", "iptables,nftables", "kube-proxy modes to compare")
	flag.Parse()
	bin, images := benchutil.BinAndImages("kubeproxy")
	r := benchutil.NewReport("kubeproxy", "kube-proxy modes on kubling server's node")
	for _, mode := range strings.Split(*modes, ",") {
		s, stop := benchutil.StartServer(bin, images, "kubeproxy", "--kube-proxy-arg", "proxy-mode="+mode)
		m := measure(s.Client, *services, *samples)
		r.Add(fmt.Sprintf("%s: %d Services created to the last answering", mode, *services), m.all.Seconds(), "s", 0)
		r.Add(fmt.Sprintf("%s: a new Service answering, %d present (median of %d)", mode, *services, *samples), m.one.Seconds(), "s", 0)
		r.MB(fmt.Sprintf("%s: kubling RSS with %d Services", mode, *services), benchutil.RSSKB(s.PID), 0)
		sum, count := syncDurations()
		r.Add(fmt.Sprintf("%s: kube-proxy's mean rules sync over the run (%d syncs)", mode, int(count)), sum/count*1000, "ms", 0)
		stop()
	}
	r.Print()
}

const ns = "default"

// syncDurations reads kube-proxy's IPv4 rule syncs so far (seconds in all,
// and how many) from its metrics.
func syncDurations() (sum, count float64) {
	resp, err := http.Get("http://127.0.0.1:10249/metrics")
	benchutil.Must(err)
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	benchutil.Must(err)
	f, ok := families["kubeproxy_sync_proxy_rules_duration_seconds"]
	if !ok {
		benchutil.Fatal("kube-proxy's metrics have no kubeproxy_sync_proxy_rules_duration_seconds")
	}
	for _, m := range f.GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "ip_family" && l.GetValue() == "IPv4" {
				return m.GetHistogram().GetSampleSum(), float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	benchutil.Fatal("kube-proxy synced no IPv4 rules")
	return 0, 0
}

type result struct{ all, one time.Duration }

// measure starts the web pod, creates n Services in front of it and times
// them, then times samples more one by one.
func measure(client kubernetes.Interface, n, samples int) result {
	ctx := context.Background()
	web, err := client.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: ptr.To[int64](0),
			Containers: []corev1.Container{{Name: "httpd", Image: "kubling.test/busybox:1", ImagePullPolicy: corev1.PullNever,
				Command:        []string{"sh", "-c", "mkdir -p /www && echo web > /www/index.html && exec httpd -f -p 8080 -h /www"},
				ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(8080)}}, PeriodSeconds: 1}}},
		},
	}, metav1.CreateOptions{})
	benchutil.Must(err)
	benchutil.WaitFor("the web pod Ready", func() bool {
		p, err := client.CoreV1().Pods(ns).Get(ctx, web.Name, metav1.GetOptions{})
		if err != nil {
			return false
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				return true
			}
		}
		return false
	})

	var res result
	begin := time.Now()
	ips := make([]string, n)
	for i := range n {
		ips[i] = create(ctx, client, fmt.Sprintf("svc-%d", i))
	}
	var p prober
	var wg sync.WaitGroup
	for _, ip := range ips {
		wg.Go(func() { p.waitAnswer(ip) })
	}
	wg.Wait()
	res.all = time.Since(begin)

	var one []time.Duration
	for i := range samples {
		time.Sleep(2 * time.Second) // past kube-proxy's minimum sync interval
		begin := time.Now()
		p.waitAnswer(create(ctx, client, fmt.Sprintf("new-%d", i)))
		one = append(one, time.Since(begin))
	}
	slices.Sort(one)
	res.one = one[len(one)/2]
	return res
}

// create makes a ClusterIP Service in front of the web pod and returns its address.
func create(ctx context.Context, client kubernetes.Interface, name string) string {
	svc, err := client.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"},
			Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}}},
	}, metav1.CreateOptions{})
	benchutil.Must(err)
	return svc.Spec.ClusterIP
}

// prober asks Services from the host. Each attempt dials from a source port
// not used before in the run: an attempt made before kube-proxy's rules
// exist leaves an un-NATed conntrack entry, and a later attempt on the same
// ports would follow it instead of the rules (as a real client retrying
// from a fixed port would not do either: this measures the rules).
type prober struct{ next atomic.Int32 }

// firstPort is the lowest of the 40000 source ports the prober cycles
// through; one in use fails to bind and that attempt counts as a miss.
const firstPort = 20000

// waitAnswer asks the Service every 100 ms until httpd answers.
func (p *prober) waitAnswer(ip string) {
	url := "http://" + net.JoinHostPort(ip, "80") + "/"
	deadline := time.Now().Add(5 * time.Minute)
	for time.Now().Before(deadline) {
		port := firstPort + int(p.next.Add(1))%40000
		d := &net.Dialer{LocalAddr: &net.TCPAddr{Port: port}, Timeout: 300 * time.Millisecond}
		c := &http.Client{Timeout: 300 * time.Millisecond, Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}}
		if resp, err := c.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	benchutil.Fatal("Service " + ip + " not answering after 5m")
}
