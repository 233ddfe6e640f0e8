package logging

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"k8s.io/klog/v2"
)

func TestQuietUnlessOursOrError(t *testing.T) {
	var buf bytes.Buffer
	log := Setup(&buf, false)
	log.Info("phase done", "phase", "datastore")
	log.WithName("apiserver").Info("sub-logger line")
	klog.Background().Info("upstream chatter")
	klog.InfoS("upstream structured chatter")
	klog.Background().Error(errors.New("boom"), "upstream failure")
	klog.ErrorS(nil, "The manifest file is empty, ignoring.")
	klog.ErrorS(errors.New(`node "n1" not found`), "Error getting the current node from lister")
	klog.ErrorS(errors.New("disk full"), "Error getting the current node from lister")
	klog.ErrorS(errors.New(`rpc error: code = NotFound desc = an error occurred when try to find container "38ff": not found`), "ContainerStatus from runtime service failed")
	klog.ErrorS(errors.New(`namespaces "kube-system" not found`), "Error while syncing ConfigMap", "configmap", "kube-system/x")
	klog.ErrorS(errors.New(`configmaps "x" is forbidden`), "Error while syncing ConfigMap", "configmap", "kube-system/y")
	klog.ErrorS(nil, `Failed to initialize CSINode: error updating CSINode annotation: timed out waiting for the condition; caused by: nodes "n1" not found`)
	klog.ErrorS(errors.New("container runtime status check may not have completed yet"), "Skipping pod synchronization")
	klog.ErrorS(errors.New(`sync "kube-system/coredns-5f7" failed with read version: 410 is not as new as written version: 412 for group resource pods`), "Unhandled Error")
	klog.ErrorS(errors.New(`sync "default/web-1" failed with pods "web-1-x" is forbidden`), "Unhandled Error")
	logrus.Info("kine chatter")
	logrus.Error("kine failure")
	klog.Flush()
	out := buf.String()
	for _, want := range []string{"phase done", "sub-logger line", "upstream failure", "kine failure", "disk full", "is forbidden", "web-1-x"} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	if !strings.Contains(out, "logging_test.go") {
		t.Errorf("lines do not name their caller:\n%s", out)
	}
	for _, unwanted := range []string{"upstream chatter", "upstream structured chatter", "kine chatter", "manifest file is empty", `node \"n1\" not found`, "ContainerStatus",
		`namespaces \"kube-system\" not found`, "CSINode", "runtime status check", "not as new as written"} {
		if strings.Contains(out, unwanted) {
			t.Errorf("%q shown without --debug:\n%s", unwanted, out)
		}
	}
}

func TestDebugShowsUpstream(t *testing.T) {
	var buf bytes.Buffer
	Setup(&buf, true)
	klog.Background().Info("upstream chatter")
	klog.V(2).InfoS("upstream verbose")
	klog.Flush()
	if out := buf.String(); !strings.Contains(out, "upstream chatter") || !strings.Contains(out, "upstream verbose") {
		t.Fatalf("debug output lacks upstream lines:\n%s", out)
	}
}

// TestRepeatedUpstreamErrorsBackOff: an upstream error line that comes
// back every second (a datastore ping, an image pull) is written at 0, 10,
// 30, 70 s … (its wait doubling), each time with the count left out; other
// lines, kubling's own and --debug are not held back.
func TestRepeatedUpstreamErrorsBackOff(t *testing.T) {
	var buf bytes.Buffer
	now := time.Unix(1000, 0)
	log := setup(&buf, false, func() time.Time { return now })
	pull := errors.New(`failed to pull image "registry.k8s.io/coredns/coredns:v1.14.7"`)
	for range 100 {
		klog.ErrorS(pull, "Failed to pull image", "pod", "kube-system/coredns-1")
		now = now.Add(time.Second)
	}
	klog.ErrorS(pull, "Failed to pull image", "pod", "kube-system/other")
	klog.ErrorS(errors.New("disk full"), "Failed to pull image", "pod", "kube-system/coredns-1")
	for range 3 {
		log.Error(pull, "kubling's own error")
	}
	klog.Flush()
	out := buf.String()
	if n := strings.Count(out, `pod="kube-system/coredns-1"`); n != 5 {
		t.Errorf("coredns-1's lines written %d times, want 5 (the pull error at 0, 10, 30, 70 s; disk full once):\n%s", n, out)
	}
	for _, want := range []string{"repeatsNotShown=9", "repeatsNotShown=19", "repeatsNotShown=39", `pod="kube-system/other"`, "disk full"} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "kubling's own error"); n != 3 {
		t.Errorf("kubling's own error written %d times, want every time (3)", n)
	}

	// Quiet for long, the line starts over: written at once.
	buf.Reset()
	now = now.Add(3 * time.Hour)
	klog.ErrorS(pull, "Failed to pull image", "pod", "kube-system/coredns-1")
	now = now.Add(11 * time.Second)
	klog.ErrorS(pull, "Failed to pull image", "pod", "kube-system/coredns-1")
	klog.Flush()
	if n := strings.Count(buf.String(), "Failed to pull image"); n != 2 {
		t.Errorf("after 3 quiet hours: written %d times, want 2 (the wait back at 10 s):\n%s", n, buf.String())
	}

	buf.Reset()
	setup(&buf, true, func() time.Time { return now })
	for range 3 {
		klog.ErrorS(pull, "Failed to pull image", "pod", "kube-system/coredns-1")
	}
	klog.Flush()
	if n := strings.Count(buf.String(), "Failed to pull image"); n != 3 {
		t.Errorf("with --debug the repeated line was written %d times, want 3", n)
	}
}

// TestStoppingHidesUpstreamErrors: once kubling stops, upstream error
// lines (components reporting what vanished under them) are left out;
// kubling's own lines and --debug still show everything.
func TestStoppingHidesUpstreamErrors(t *testing.T) {
	var buf bytes.Buffer
	log := Setup(&buf, false)
	klog.Background().Error(errors.New("connection refused"), "before stopping")
	Stopping(log.WithName("server"))
	klog.Background().Error(errors.New("context canceled"), "while stopping")
	logrus.Error("kine while stopping")
	log.Error(errors.New("close datastore"), "ours while stopping")
	klog.Flush()
	out := buf.String()
	for _, want := range []string{"before stopping", "ours while stopping"} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	for _, unwanted := range []string{`"while stopping"`, "kine while stopping"} {
		if strings.Contains(out, unwanted) {
			t.Errorf("%q shown while stopping:\n%s", unwanted, out)
		}
	}
	buf.Reset()
	log = Setup(&buf, true)
	Stopping(log)
	klog.Background().Error(errors.New("context canceled"), "debug while stopping")
	klog.Flush()
	if !strings.Contains(buf.String(), "debug while stopping") {
		t.Errorf("--debug hid an upstream line while stopping:\n%s", buf.String())
	}
}
