// Package logging sets up kubling's one logger. Upstream Kubernetes code logs
// through klog, so kubling does too: klog is backed by a text logger that shows
// kubling's own lines and every error, and upstream info lines only with --debug.
package logging

import (
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/sirupsen/logrus"
	"k8s.io/klog/v2"
	"k8s.io/klog/v2/textlogger"
)

// Name is the logger name of kubling's own code.
const Name = "kubling"

// Setup installs the process-wide logger (klog is global: upstream forces
// that) and returns the logger for kubling's own code. With debug, upstream
// components log at verbosity 2 as well.
func Setup(out io.Writer, debug bool) klog.Logger { return setup(out, debug, time.Now) }

func setup(out io.Writer, debug bool, now func() time.Time) klog.Logger {
	v := 0
	if debug {
		v = 2
	}
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	_ = fs.Set("v", strconv.Itoa(v))
	_ = fs.Set("logtostderr", "true")

	newSink := func() logr.LogSink {
		return textlogger.NewLogger(textlogger.NewConfig(textlogger.Verbosity(v), textlogger.Output(out))).GetSink()
	}
	stopping := &atomic.Bool{}
	root := logr.New(&filterSink{sink: newSink(), debug: debug, stopping: stopping, repeats: &repeats{now: now, seen: map[string]*repeat{}}})
	klog.SetLoggerWithOptions(root, klog.ContextualLogger(true))

	// kine and remotedialer (the agents' tunnels) log through logrus; send
	// their lines through the same logger.
	logrus.SetOutput(io.Discard)
	logrus.SetLevel(logrus.InfoLevel)
	if debug {
		logrus.SetLevel(logrus.DebugLevel)
	}
	hooks := logrus.LevelHooks{}
	hooks.Add(logrusHook{log: root.WithName("logrus")})
	logrus.StandardLogger().ReplaceHooks(hooks)

	return logr.New(&filterSink{sink: newSink(), debug: debug, ours: true, stopping: stopping}).WithName(Name)
}

// Stopping tells the logger Setup returned (or one derived from it) that
// kubling is shutting down: from then on upstream error lines are left out
// unless debug. Components torn down one after the other report what
// vanished under them (context canceled, the apiserver's port refused) —
// a screen of errors after every Ctrl-C that need nothing from anyone.
// kubling's own lines are still written.
func Stopping(log klog.Logger) {
	if f, ok := log.GetSink().(*filterSink); ok && f.stopping != nil {
		f.stopping.Store(true)
	}
}

// filterSink passes kubling's own info lines (those of the logger Setup
// returns and its descendants), every error, and — with debug — everything
// else. An upstream error line that repeats (an image pull retrying every
// few seconds) is written less and less often, at most once an hour, with
// the count of those left out, unless debug: logs often live on flash
// storage.
type filterSink struct {
	sink     logr.LogSink
	debug    bool
	ours     bool
	stopping *atomic.Bool // shared by every sink of one Setup
	repeats  *repeats     // upstream sinks only
}

// Init accounts for this wrapper's own frame, so lines name their caller.
func (f *filterSink) Init(info logr.RuntimeInfo) {
	info.CallDepth++
	f.sink.Init(info)
}

func (f *filterSink) Enabled(level int) bool {
	return (f.ours || f.debug) && f.sink.Enabled(level)
}

func (f *filterSink) Info(level int, msg string, kv ...any) { f.sink.Info(level, msg, kv...) }

func (f *filterSink) Error(err error, msg string, kv ...any) {
	if !f.debug && !f.ours {
		if harmless(err, msg) || f.stopping.Load() {
			return
		}
		key := msg + "\x00" + fmt.Sprint(kv...)
		if err != nil {
			key += "\x00" + err.Error()
		}
		show, skipped := f.repeats.admit(key)
		if !show {
			return
		}
		if skipped > 0 {
			kv = append(kv, "repeatsNotShown", skipped)
		}
	}
	f.sink.Error(err, msg, kv...)
}

// An upstream error line, once written, is left out when it comes again
// within its wait; each time it is written again the wait doubles, from
// 10 s to at most an hour (a line quiet for longer than twice its wait
// starts over). So a retry loop still shows, less and less often.
const (
	repeatFirstWait = 10 * time.Second
	repeatMaxWait   = time.Hour
)

// maxRepeats bounds the lines remembered.
const maxRepeats = 512

// repeats remembers the upstream error lines written lately.
type repeats struct {
	mu   sync.Mutex
	now  func() time.Time
	seen map[string]*repeat
}

type repeat struct {
	shown   time.Time
	wait    time.Duration
	skipped int
}

// admit says whether the line key is written now and, if so, how many of
// it were left out since it last was.
func (r *repeats) admit(key string) (show bool, skipped int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	if e, ok := r.seen[key]; ok {
		gap := now.Sub(e.shown)
		if gap < e.wait {
			e.skipped++
			return false, 0
		}
		skipped = e.skipped
		e.shown, e.skipped = now, 0
		if gap >= 2*e.wait {
			e.wait = repeatFirstWait
		} else {
			e.wait = min(2*e.wait, repeatMaxWait)
		}
		return true, skipped
	}
	if len(r.seen) >= maxRepeats {
		for k, old := range r.seen {
			if now.Sub(old.shown) >= old.wait {
				delete(r.seen, k)
			}
		}
		if len(r.seen) >= maxRepeats {
			clear(r.seen)
		}
	}
	r.seen[key] = &repeat{shown: now, wait: repeatFirstWait}
	return true, 0
}

// harmless tells upstream error lines that every normal start prints and
// that mean nothing to a user; --debug still shows them.
func harmless(err error, msg string) bool {
	switch {
	case msg == "The manifest file is empty, ignoring.":
		// component-base's metrics options log this whenever no label
		// allow-list manifest is configured, i.e. always.
		return true
	case (msg == "Failed to ensure lease exists, will retry" || msg == "Error while syncing ConfigMap") &&
		errContains(err, `namespaces "kube-system" not found`):
		// First start: the apiserver's lease and legacy-token-tracking
		// controllers run before its own bootstrap creates kube-system, and
		// retry.
		return true
	case msg == "Unhandled Error" && errContains(err, "is not as new as written version"):
		// The ReplicaSet controller waits for its informer to see its own
		// last write before syncing again (by design; it requeues), and
		// reports each wait as an error: on every new Deployment.
		return true
	case strings.HasPrefix(msg, "Failed to initialize CSINode") && strings.Contains(msg, "not found"):
		// The kubelet's CSI plugin manager starts before the Node is
		// registered, and retries (the cause is in the message, not err).
		return true
	}
	for _, h := range kubeletStartup {
		if strings.HasPrefix(msg, h.msg) && (h.err == "" || errContains(err, h.err)) {
			return true
		}
	}
	return false
}

// kubeletStartup are the kubelet's and kube-proxy's error lines of every
// node start: the node is not registered yet, stats and the runtime are not
// ready yet, or (hosts whose capability bounding set lacks CAP_SYS_RESOURCE, as
// many VMs and container hosts) limits it cannot raise. Each is retried or irrelevant; none needs the user.
var kubeletStartup = []struct{ msg, err string }{
	{"Error getting the current node from lister", "not found"},
	{"Unable to register mirror pod because node is not registered yet", ""},
	{"Failed to get node when trying to set owner ref to the node lease", "not found"},
	{"Eviction manager: failed to get summary stats", "not found"},
	{"eviction manager: failed to check if we have separate container filesystem", ""},
	{"Image garbage collection failed once. Stats initialization may not have completed yet", ""},
	{"Skipping pod synchronization", "PLEG is not healthy: pleg has yet to be successful"},
	{"Skipping pod synchronization", "container runtime status check may not have completed yet"},
	{"Failed to read data from checkpoint", "checkpoint is not found"},
	{"Failed to set rlimit on max file handles", "operation not permitted"},
	{"Failed to ensure process in container with oom score", ""},
	{"Kube-proxy configuration may be incomplete or incorrect", "nodePortAddresses is unset"},
	{"Error updating node status, will retry", "not found"},
	// The kubelet's log GC asks the runtime about every container log link
	// in /var/log/containers, those of an earlier cluster on this host too
	// (one line each, a minute after start), and removes the dangling ones.
	{"ContainerStatus from runtime service failed", "NotFound"},
}

func errContains(err error, s string) bool { return err != nil && strings.Contains(err.Error(), s) }

func (f *filterSink) WithValues(kv ...any) logr.LogSink {
	return &filterSink{sink: f.sink.WithValues(kv...), debug: f.debug, ours: f.ours, stopping: f.stopping, repeats: f.repeats}
}

func (f *filterSink) WithName(name string) logr.LogSink {
	return &filterSink{sink: f.sink.WithName(name), debug: f.debug, ours: f.ours, stopping: f.stopping, repeats: f.repeats}
}

func (f *filterSink) WithCallDepth(depth int) logr.LogSink {
	if s, ok := f.sink.(logr.CallDepthLogSink); ok {
		return &filterSink{sink: s.WithCallDepth(depth), debug: f.debug, ours: f.ours, stopping: f.stopping, repeats: f.repeats}
	}
	return f
}

type logrusHook struct{ log logr.Logger }

func (logrusHook) Levels() []logrus.Level { return logrus.AllLevels }

func (h logrusHook) Fire(e *logrus.Entry) error {
	switch {
	case e.Level <= logrus.ErrorLevel:
		h.log.Error(nil, e.Message)
	case e.Level == logrus.WarnLevel:
		h.log.Info(e.Message)
	default:
		h.log.V(2).Info(e.Message)
	}
	return nil
}
