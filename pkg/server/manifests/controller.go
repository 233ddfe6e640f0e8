package manifests

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"

	bundled "github.com/kubling/kubling/manifests"
	"github.com/kubling/kubling/pkg/fileutil"
	"github.com/kubling/kubling/pkg/kubeconfig"
)

// StateConfigMap (in kube-system) records, per file, its hash and the
// objects applied from it; events about files are attached to it.
const StateConfigMap = "kubling-manifests"

// retryFailed is how often a file that failed is tried again unchanged.
const retryFailed = 30 * time.Second

// Config tells the controller where the files are and what to render.
type Config struct {
	Dir        string
	Kubeconfig string
	// Applier applies as the kubeconfig's user; share one so its discovery
	// cache is filled once per start.
	Applier *Applier
	Values  bundled.Values
	// Disabled bundled add-ons: their file is removed (unless user-owned,
	// then left in place but not applied) and their objects deleted.
	Disabled map[string]bool
	// Interval between looks at the folder (default 2 s).
	Interval time.Duration
	Log      klog.Logger
}

// Controller is a component: Start renders the bundled files and applies
// the folder once (so the add-ons exist when kubling says ready), then keeps
// watching it until Stop.
type Controller struct {
	cfg     Config
	applier *Applier
	client  kubernetes.Interface
	events  record.EventRecorder
	stopAll func()

	skip     map[string]bool      // files not to apply (disabled, user-owned)
	seen     map[string]string    // each file's hash at the previous look
	settle   bool                 // apply a file only once it stopped changing
	lastTry  map[string]time.Time // failed files, by name
	failed   map[string]string    // failed files: the hash that failed
	cancel   context.CancelFunc
	done     chan struct{}
	stateObj *corev1.ConfigMap
	// state is the record kept in stateObj. The controller is its only
	// writer, so it is read from the API once and then kept here; a failed
	// save drops it, so the next look reads it back.
	state map[string]FileState
}

// New returns the controller.
func New(cfg Config) *Controller {
	if cfg.Interval == 0 {
		cfg.Interval = 2 * time.Second
	}
	return &Controller{cfg: cfg, skip: map[string]bool{}, seen: map[string]string{}, lastTry: map[string]time.Time{}, failed: map[string]string{}}
}

func (c *Controller) Name() string { return "manifests" }

func (c *Controller) Start(ctx context.Context) error {
	if err := c.writeBundled(); err != nil {
		return err
	}
	c.applier = c.cfg.Applier
	var err error
	if c.client, err = kubeconfig.NewClient(c.cfg.Kubeconfig); err != nil {
		return err
	}
	broadcaster := record.NewBroadcaster(record.WithContext(context.Background()))
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: c.client.CoreV1().Events("")})
	c.events = broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "kubling-manifests"})
	c.stopAll = broadcaster.Shutdown
	if err := c.sync(ctx); err != nil {
		return err
	}
	// From now on a file must look the same twice in a row before it is
	// applied: one caught half-written (an editor, a redirect) would
	// otherwise prune what its missing half declares.
	c.settle = true
	loop, cancel := context.WithCancel(context.Background())
	c.cancel, c.done = cancel, make(chan struct{})
	go func() {
		defer close(c.done)
		t := time.NewTicker(c.cfg.Interval)
		defer t.Stop()
		for {
			select {
			case <-loop.Done():
				return
			case <-t.C:
				if err := c.sync(loop); err != nil && loop.Err() == nil {
					c.cfg.Log.Error(err, "Manifests")
				}
			}
		}
	}()
	return nil
}

func (c *Controller) Ready(context.Context) error { return nil }

func (c *Controller) Stop() error {
	if c.cancel != nil {
		c.cancel()
		<-c.done
	}
	if c.stopAll != nil {
		c.stopAll()
	}
	return nil
}

// writeBundled renders each bundled add-on into the folder, unless the
// file there is user-owned; a disabled add-on's file is removed.
func (c *Controller) writeBundled() error {
	if err := os.MkdirAll(c.cfg.Dir, 0o700); err != nil {
		return fmt.Errorf("manifests folder: %w", err)
	}
	for _, name := range bundled.Names() {
		path := filepath.Join(c.cfg.Dir, name+".yaml")
		current, err := os.ReadFile(path)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		owned := err == nil && UserOwned(current)
		switch {
		case c.cfg.Disabled[name] && owned:
			c.skip[filepath.Base(path)] = true
			c.cfg.Log.Info("Add-on disabled; its user-owned file is kept but not applied", "file", path)
		case c.cfg.Disabled[name]:
			if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
		case owned:
			c.cfg.Log.Info("Add-on file is user-owned; not rewritten", "file", path)
		default:
			body, err := bundled.Render(name, c.cfg.Values)
			if err != nil {
				return err
			}
			want := append([]byte(Header(name)), body...)
			if string(want) != string(current) {
				if err := fileutil.WriteAtomic(path, want, 0o600); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// sync applies what changed in the folder and deletes what left it.
func (c *Controller) sync(ctx context.Context) error {
	if c.state == nil {
		state, err := c.loadState(ctx)
		if err != nil {
			return err
		}
		c.state = state
	}
	state := c.state
	entries, err := os.ReadDir(c.cfg.Dir)
	if err != nil {
		return fmt.Errorf("read %s: %w", c.cfg.Dir, err)
	}
	present := map[string]bool{}
	changed := false
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !Manifest(name) || c.skip[name] {
			continue
		}
		present[name] = true
		if !validKey.MatchString(name) {
			c.warn(name, "FileNameNotSupported", fmt.Errorf("use only letters, digits, '-', '_' and '.' in manifest file names"))
			continue
		}
		content, err := os.ReadFile(filepath.Join(c.cfg.Dir, name))
		if err != nil {
			c.warn(name, "ReadFailed", err)
			continue
		}
		hash := Hash(content)
		previous := c.seen[name]
		c.seen[name] = hash
		old, known := state[name]
		if known && old.Hash == hash {
			continue
		}
		if c.settle && previous != hash {
			continue // changed since the last look: wait until it settles
		}
		if c.failed[name] == hash && time.Since(c.lastTry[name]) < retryFailed {
			continue
		}
		next, ok := c.applyFile(ctx, name, content, old.Objects, claimedElsewhere(state, name))
		state[name] = next
		changed = true
		if ok {
			delete(c.failed, name)
		} else {
			// Remember the objects, not the hash: the file is tried again.
			c.failed[name], c.lastTry[name] = hash, time.Now()
			next.Hash = ""
			state[name] = next
		}
	}
	for name := range c.seen {
		if !present[name] {
			delete(c.seen, name)
		}
	}
	for name, st := range state {
		if present[name] {
			continue
		}
		remaining := c.deleteAll(ctx, name, st.Objects, claimedElsewhere(state, name))
		if len(remaining) == 0 {
			delete(state, name)
			c.cfg.Log.Info("Manifest removed; its objects are deleted", "file", name, "objects", len(st.Objects))
		} else {
			state[name] = FileState{Objects: remaining}
		}
		changed = true
	}
	if changed {
		if err := c.saveState(ctx, state); err != nil {
			c.state = nil
			return err
		}
	}
	return nil
}

// applyFile applies a file's objects and prunes those that left it. It
// returns the new state and whether everything went through. Errors name
// the file and the object, go to the log and to an event, and never stop
// the other objects.
func (c *Controller) applyFile(ctx context.Context, name string, content []byte, old []Ref, claimed func(Ref) bool) (FileState, bool) {
	objs, err := Decode(content)
	if err != nil {
		c.warn(name, "ParseFailed", err)
		return FileState{Objects: old}, false
	}
	ok := true
	var current []Ref
	for _, obj := range objs {
		ref, err := c.applier.Apply(ctx, obj)
		current = append(current, ref)
		if err != nil {
			c.warn(name, "ApplyFailed", fmt.Errorf("%s: %w", ref, err))
			ok = false
		}
	}
	if !ok {
		// Prune only after a clean apply: a failed one may have named an
		// object differently (its namespace not yet defaulted, say).
		c.cfg.Log.Info("Manifest applied in part; nothing pruned", "file", name, "objects", len(objs))
		return FileState{Hash: Hash(content), Objects: union(current, old)}, false
	}
	pruned := Pruned(old, current)
	left := c.deleteAll(ctx, name, pruned, claimed)
	if len(left) > 0 {
		ok = false
		current = append(current, left...)
	}
	c.cfg.Log.Info("Manifest applied", "file", name, "objects", len(objs), "pruned", len(pruned)-len(left), "ok", ok)
	return FileState{Hash: Hash(content), Objects: current}, ok
}

// deleteAll deletes refs — except those another file declares — and
// returns those that could not be deleted.
func (c *Controller) deleteAll(ctx context.Context, name string, refs []Ref, claimed func(Ref) bool) []Ref {
	var left []Ref
	for _, ref := range refs {
		if claimed(ref) {
			continue
		}
		if err := c.applier.Delete(ctx, ref); err != nil {
			c.warn(name, "DeleteFailed", fmt.Errorf("%s: %w", ref, err))
			left = append(left, ref)
		}
	}
	return left
}

// claimedElsewhere tells whether a file other than name declares an object.
func claimedElsewhere(state map[string]FileState, name string) func(Ref) bool {
	return func(r Ref) bool {
		for other, st := range state {
			if other != name && slices.ContainsFunc(st.Objects, r.sameObject) {
				return true
			}
		}
		return false
	}
}

// union is a's refs plus those of b not in a.
func union(a, b []Ref) []Ref {
	out := slices.Clone(a)
	for _, r := range b {
		if !slices.ContainsFunc(out, r.sameObject) {
			out = append(out, r)
		}
	}
	return out
}

// warn logs a file's problem and records it as an event on the state
// ConfigMap (`kubectl get events -n kube-system`).
func (c *Controller) warn(file, reason string, err error) {
	c.cfg.Log.Error(err, "Manifest problem", "file", filepath.Join(c.cfg.Dir, file), "reason", reason)
	if c.stateObj != nil {
		c.events.Eventf(c.stateObj, corev1.EventTypeWarning, reason, "%s: %v", file, err)
	}
}

func (c *Controller) loadState(ctx context.Context) (map[string]FileState, error) {
	cms := c.client.CoreV1().ConfigMaps(metav1.NamespaceSystem)
	cm, err := cms.Get(ctx, StateConfigMap, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		cm, err = cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: StateConfigMap, Namespace: metav1.NamespaceSystem}}, metav1.CreateOptions{FieldManager: FieldManager})
	}
	if err != nil {
		return nil, fmt.Errorf("manifests state: %w", err)
	}
	c.stateObj = cm
	state := map[string]FileState{}
	for name, raw := range cm.Data {
		var st FileState
		if err := json.Unmarshal([]byte(raw), &st); err != nil {
			return nil, fmt.Errorf("manifests state for %s: %w", name, err)
		}
		state[name] = st
	}
	return state, nil
}

func (c *Controller) saveState(ctx context.Context, state map[string]FileState) error {
	cm := c.stateObj.DeepCopy()
	cm.Data = map[string]string{}
	names := make([]string, 0, len(state))
	for n := range state {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		raw, err := json.Marshal(state[n])
		if err != nil {
			return err
		}
		cm.Data[n] = string(raw)
	}
	updated, err := c.client.CoreV1().ConfigMaps(metav1.NamespaceSystem).Update(ctx, cm, metav1.UpdateOptions{FieldManager: FieldManager})
	if err != nil {
		return fmt.Errorf("save manifests state: %w", err)
	}
	c.stateObj = updated
	return nil
}
