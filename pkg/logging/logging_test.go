package logging

import (
	"bytes"
	"errors"
	"strings"
	"testing"

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
	logrus.Info("kine chatter")
	logrus.Error("kine failure")
	klog.Flush()
	out := buf.String()
	for _, want := range []string{"phase done", "sub-logger line", "upstream failure", "kine failure", "disk full"} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	if !strings.Contains(out, "logging_test.go") {
		t.Errorf("lines do not name their caller:\n%s", out)
	}
	for _, unwanted := range []string{"upstream chatter", "upstream structured chatter", "kine chatter", "manifest file is empty", `node \"n1\" not found`} {
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
