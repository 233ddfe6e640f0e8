package addons

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
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"

	"github.com/kubling/kubling/manifests"
	"github.com/kubling/kubling/pkg/component"
	"github.com/kubling/kubling/pkg/fileutil"
	"github.com/kubling/kubling/pkg/kubeconfig"
	"github.com/kubling/kubling/pkg/server/apply"
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
	Applier *apply.Applier
	Values  manifests.Values
	// Disabled bundled add-ons: their file is removed (unless user-owned,
	// then left in place but not applied) and their objects deleted.
	Disabled map[string]bool
	// Interval between looks at the folder (default 2 s).
	Interval time.Duration
	Log      klog.Logger
}

// objectAPI is what the controller needs of the API server: the
// apply.Applier, or a fake in unit tests.
type objectAPI interface {
	// Resolve settles obj's namespace and returns its reference.
	Resolve(ctx context.Context, obj *unstructured.Unstructured) (apply.Ref, error)
	// Get returns the live object, nil when there is none.
	Get(ctx context.Context, ref apply.Ref) (*unstructured.Unstructured, error)
	// ApplyRef server-side-applies obj; true when this apply created it.
	ApplyRef(ctx context.Context, ref apply.Ref, obj *unstructured.Unstructured, force bool) (bool, error)
	// Unmark takes the given labels and annotations off the object if
	// they still have the given values.
	Unmark(ctx context.Context, ref apply.Ref, labels, annotations map[string]string) error
	// DeleteExact deletes the object if its UID and resourceVersion
	// still match (a Conflict if not); one already gone is no error.
	DeleteExact(ctx context.Context, ref apply.Ref, uid types.UID, resourceVersion string) error
}

// stateStore keeps the controller's record of the files (the ConfigMap
// kube-system/kubling-manifests; a fake in unit tests).
type stateStore interface {
	load(ctx context.Context) (map[string]FileState, error)
	save(ctx context.Context, state map[string]FileState) error
}

// Controller is a component: Start renders the bundled files and applies
// the folder once (so the add-ons exist when kubling says ready), then keeps
// watching it until Stop.
type Controller struct {
	cfg     Config
	api     objectAPI
	store   stateStore
	event   func(reason, message string) // a warning event; nil: none
	now     func() time.Time
	stopAll func()

	skip    map[string]bool        // files not to apply (disabled, user-owned)
	seen    map[string]string      // each file's hash at the previous look
	settle  bool                   // apply a file only once it stopped changing
	lastTry map[string]time.Time   // failed files, by name
	failed  map[string]string      // failed files: the hash that failed
	empty   map[string]string      // files without objects: the hash logged
	legacy  map[string][]apply.Ref // state entries from before the marks
	reapply map[string]bool        // files to apply again though unchanged
	retries map[string]*retry      // deletes that failed, by object
	cancel  context.CancelFunc
	stop    chan struct{} // closed by Stop: no pass after the one under way
	done    chan struct{}
	// state is the record kept by the store. The controller is its only
	// writer, so it is read once and then kept here; a failed save drops
	// it, so the next look reads it back. It only says where to look:
	// what may be deleted is decided by the marks on the live objects.
	state map[string]FileState
}

var _ component.Component = (*Controller)(nil)

// retry is the back-off of one object's failing delete.
type retry struct {
	delay time.Duration
	next  time.Time
	err   string // the last error, logged once
}

// New returns the controller.
func New(cfg Config) *Controller {
	if cfg.Interval == 0 {
		cfg.Interval = 2 * time.Second
	}
	return &Controller{
		cfg: cfg, now: time.Now,
		skip: map[string]bool{}, seen: map[string]string{}, lastTry: map[string]time.Time{}, failed: map[string]string{},
		empty: map[string]string{}, legacy: map[string][]apply.Ref{}, reapply: map[string]bool{}, retries: map[string]*retry{},
	}
}

func (c *Controller) Name() string { return "manifests" }

func (c *Controller) Start(ctx context.Context) error {
	if err := c.writeBundled(); err != nil {
		return err
	}
	if c.cfg.Applier == nil {
		return errors.New("manifests: no applier")
	}
	c.api = c.cfg.Applier
	client, err := kubeconfig.NewClient(c.cfg.Kubeconfig)
	if err != nil {
		return err
	}
	store := &configMapStore{client: client, log: c.cfg.Log}
	c.store = store
	broadcaster := record.NewBroadcaster(record.WithContext(context.Background()))
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events("")})
	recorder := broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "kubling-manifests"})
	c.event = func(reason, message string) {
		if store.obj != nil {
			recorder.Eventf(store.obj, corev1.EventTypeWarning, reason, "%s", message)
		}
	}
	c.stopAll = broadcaster.Shutdown
	// The first pass runs in the background too: the server's node starts
	// meanwhile instead of waiting about two seconds for the add-ons
	// (measured on a cold start, 2026-12-06), and nothing a node needs to
	// become Ready comes from these files.
	work, cancel := context.WithCancel(context.Background())
	c.cancel, c.stop, c.done = cancel, make(chan struct{}), make(chan struct{})
	go func() {
		defer close(c.done)
		pass := func() {
			if err := c.sync(work); err != nil && work.Err() == nil {
				c.cfg.Log.Error(err, "Manifests")
			}
		}
		pass()
		// From now on a file must look the same twice in a row before it
		// is applied: one caught half-written (an editor, a redirect)
		// would otherwise prune what its missing half declares.
		c.settle = true
		t := time.NewTicker(c.cfg.Interval)
		defer t.Stop()
		for {
			select {
			case <-c.stop:
				return
			case <-t.C:
				pass()
			}
		}
	}()
	return nil
}

// stopGrace is how long Stop lets a pass that is under way finish: one cut
// short has applied objects whose file it has not recorded yet, and those
// would outlive their file.
const stopGrace = 30 * time.Second

func (c *Controller) Ready(context.Context) error { return nil }

func (c *Controller) Stop() error {
	if c.cancel != nil {
		close(c.stop)
		select {
		case <-c.done:
		case <-time.After(stopGrace):
			c.cfg.Log.Info("Manifests: the pass under way did not end in time; it is cut short", "waited", stopGrace)
			c.cancel()
			<-c.done
		}
		c.cancel()
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
	for _, name := range manifests.Names() {
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
			body, err := manifests.Render(name, c.cfg.Values)
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
		state, err := c.store.load(ctx)
		if err != nil {
			return err
		}
		c.state = state
		c.legacy = map[string][]apply.Ref{}
		for name, st := range state {
			if st.Format < stateFormat {
				// Written by a kubling that did not mark objects: apply the
				// file again so its objects get their marks.
				c.legacy[name] = st.Objects
				c.reapply[name] = true
			}
		}
		if len(c.legacy) > 0 {
			c.cfg.Log.Info("Manifests state from an earlier kubling: its files are applied again to mark their objects", "files", len(c.legacy))
		}
	}
	state := c.state
	entries, err := os.ReadDir(c.cfg.Dir)
	if err != nil {
		return fmt.Errorf("read %s: %w", c.cfg.Dir, err)
	}
	present := map[string]bool{}
	for _, e := range entries {
		if name := e.Name(); !e.IsDir() && Manifest(name) && !c.skip[name] {
			present[name] = true
		}
	}
	applied := map[string]bool{}
	changed := false
	for _, e := range entries {
		name := e.Name()
		if !present[name] {
			continue
		}
		if !validKey.MatchString(name) {
			c.warn(name, "FileNameNotSupported", fmt.Errorf("use only letters, digits, '-', '_' and '.' in manifest file names"))
			continue
		}
		content, err := os.ReadFile(c.path(name))
		if err != nil {
			c.warn(name, "ReadFailed", err)
			continue
		}
		hash := Hash(content)
		previous := c.seen[name]
		c.seen[name] = hash
		old, known := state[name]
		if known && old.Hash == hash && !c.reapply[name] {
			continue
		}
		if c.settle && previous != hash {
			continue // changed since the last look: wait until it settles
		}
		if c.failed[name] == hash && c.now().Sub(c.lastTry[name]) < retryFailed {
			continue
		}
		objs, err := apply.Decode(content)
		if err != nil {
			c.warn(name, "ParseFailed", err)
			c.failed[name], c.lastTry[name] = hash, c.now()
			continue
		}
		if len(objs) == 0 {
			// Empty, or comments only: most likely caught while being
			// rewritten. Pruning everything now would take the objects
			// away until it is written again; only removing the file does.
			if c.empty[name] != hash {
				c.empty[name] = hash
				c.cfg.Log.Info("Manifest has no objects: nothing is applied or pruned until it has some, or is removed", "file", c.path(name), "kept", len(old.Objects))
			}
			continue
		}
		delete(c.empty, name)
		if !known {
			old.Format = stateFormat
		}
		next, ok := c.applyFile(ctx, name, objs, hash, old, claimedElsewhere(state, name, present))
		delete(c.reapply, name)
		applied[name] = true
		changed = true
		if ok {
			delete(c.failed, name)
			delete(c.lastTry, name)
		} else {
			// Remember the objects, not the hash: the file is tried again.
			c.failed[name], c.lastTry[name] = hash, c.now()
			next.Hash = ""
		}
		state[name] = next
	}
	for _, m := range []map[string]string{c.seen, c.empty, c.failed} {
		for name := range m {
			if !present[name] {
				delete(m, name)
			}
		}
	}
	for name := range c.reapply {
		if !present[name] {
			delete(c.reapply, name)
		}
	}
	// Objects that left a file and could not be deleted at once.
	for name, st := range state {
		if !present[name] || applied[name] || len(st.Prune) == 0 {
			continue
		}
		left, _ := c.deleteAll(ctx, name, st.Prune, claimedElsewhere(state, name, present))
		if len(left) != len(st.Prune) {
			st.Prune = left
			state[name] = st
			changed = true
		}
	}
	// Removed files take their objects with them.
	for name, st := range state {
		if present[name] {
			continue
		}
		refs := union(st.Objects, st.Prune)
		remaining, deleted := c.deleteAll(ctx, name, refs, claimedElsewhere(state, name, present))
		switch {
		case len(remaining) == 0:
			delete(state, name)
			delete(c.legacy, name)
			c.cfg.Log.Info("Manifest removed; its objects are deleted", "file", name, "objects", len(refs), "deleted", deleted)
			changed = true
		case len(remaining) != len(refs) || len(st.Prune) > 0:
			state[name] = FileState{Objects: remaining, Format: st.Format}
			changed = true
		}
	}
	if changed {
		if err := c.store.save(ctx, state); err != nil {
			c.state = nil
			return err
		}
	}
	return nil
}

// applyFile applies a file's objects and prunes those that left it. It
// returns the new state and whether every object went through (a prune
// that fails does not count: it is retried with back-off). Errors name
// the file and the object, go to the log and to an event, and never stop
// the other objects.
func (c *Controller) applyFile(ctx context.Context, name string, objs []*unstructured.Unstructured, hash string, old FileState, claimed func(apply.Ref) string) (FileState, bool) {
	ok := true
	var current []apply.Ref
	for _, obj := range objs {
		ref, act, err := c.applyObject(ctx, name, obj)
		switch {
		case err != nil:
			c.warn(name, "ApplyFailed", fmt.Errorf("%s: %w", ref, err))
			ok = false
		case act == actSkip:
			c.warn(name, "ObjectNotOwned", fmt.Errorf("%s exists and was not created by kubling: it is left as it is, and kubling never deletes it "+
				"(to hand it to kubling, label it %s=%s and annotate it %s=%s)", ref, ManagedByLabel, ManagedByValue, ManifestFileAnnotation, name))
			continue
		case act == actAdopt:
			c.cfg.Log.Info("Object from an earlier kubling marked as kubling's", "file", name, "object", ref.String())
		}
		current = append(current, ref)
		delete(c.retries, ref.Key())
	}
	if !ok {
		// Prune only after a clean apply: a failed one may have named an
		// object differently (its namespace not yet defaulted, say).
		c.cfg.Log.Info("Manifest applied in part; nothing pruned", "file", name, "objects", len(objs))
		return FileState{Hash: hash, Objects: union(current, old.Objects), Prune: old.Prune, Format: old.Format}, false
	}
	pruned := Pruned(union(old.Objects, old.Prune), current)
	left, deleted := c.deleteAll(ctx, name, pruned, claimed)
	delete(c.legacy, name)
	c.cfg.Log.Info("Manifest applied", "file", name, "objects", len(objs), "owned", len(current), "pruned", deleted, "pending", len(left))
	return FileState{Hash: hash, Objects: current, Prune: left, Format: stateFormat}, true
}

// applyObject applies one object of file, unless it is someone else's
// (actSkip, no error): see decideApply.
func (c *Controller) applyObject(ctx context.Context, file string, obj *unstructured.Unstructured) (apply.Ref, applyAction, error) {
	ref, err := c.api.Resolve(ctx, obj)
	if err != nil {
		return ref, actCreate, err
	}
	live, err := c.api.Get(ctx, ref)
	if err != nil {
		return ref, actCreate, fmt.Errorf("look up: %w", err)
	}
	act := decideApply(live, slices.ContainsFunc(c.legacy[file], ref.SameObject))
	if act == actSkip {
		return ref, act, nil
	}
	setMarks(obj, file)
	if act != actCreate {
		_, err := c.api.ApplyRef(ctx, ref, obj, true)
		return ref, act, err
	}
	// Not forced: should someone create the object between the look and
	// this apply, their values are not overwritten (a conflict instead).
	created, err := c.api.ApplyRef(ctx, ref, obj, false)
	switch {
	case apierrors.IsConflict(err):
		return ref, actSkip, nil
	case err != nil:
		return ref, act, err
	case !created:
		// Someone else created it after the look: not kubling's.
		if err := c.api.Unmark(ctx, ref, map[string]string{ManagedByLabel: ManagedByValue}, map[string]string{ManifestFileAnnotation: file}); err != nil {
			return ref, act, fmt.Errorf("created by someone else meanwhile; removing kubling's marks: %w", err)
		}
		return ref, actSkip, nil
	}
	return ref, act, nil
}

// deleteAll deletes those of refs that kubling owns through file — except
// those another present file declares — and returns the ones to try again
// (failed, or waiting for their back-off) and how many it deleted.
func (c *Controller) deleteAll(ctx context.Context, file string, refs []apply.Ref, claimed func(apply.Ref) string) ([]apply.Ref, int) {
	var left []apply.Ref
	deleted := 0
	for _, ref := range refs {
		key := ref.Key()
		if other := claimed(ref); other != "" {
			// Apply the other file again, so the object's marks name a
			// file that declares it.
			c.reapply[other] = true
			delete(c.retries, key)
			continue
		}
		r := c.retries[key]
		if r != nil && c.now().Before(r.next) {
			left = append(left, ref)
			continue
		}
		gone, err := c.deleteOwned(ctx, file, ref)
		if err != nil {
			c.deleteFailed(file, ref, err)
			left = append(left, ref)
			continue
		}
		if r != nil {
			delete(c.retries, key)
			c.cfg.Log.Info("Manifest object no longer fails to delete", "file", c.path(file), "object", ref.String())
		}
		if gone {
			deleted++
		}
	}
	return left, deleted
}

// deleteOwned deletes the object if its live marks say kubling made it
// from file (true), and leaves it otherwise. The delete is conditional on
// the UID and resourceVersion looked at, so an object replaced or
// re-marked in between is not deleted.
func (c *Controller) deleteOwned(ctx context.Context, file string, ref apply.Ref) (bool, error) {
	for attempt := 1; ; attempt++ {
		live, err := c.api.Get(ctx, ref)
		if err != nil {
			return false, fmt.Errorf("look up: %w", err)
		}
		if live == nil {
			return false, nil
		}
		if !mayDelete(live, file) {
			owner, marked := ownerFile(live)
			c.cfg.Log.Info("Not deleted: the object does not carry kubling's marks for this file", "file", c.path(file), "object", ref.String(), "kubling", marked, "markedFile", owner)
			return false, nil
		}
		err = c.api.DeleteExact(ctx, ref, live.GetUID(), live.GetResourceVersion())
		if err == nil {
			return true, nil
		}
		if !apierrors.IsConflict(err) || attempt == 3 {
			return false, fmt.Errorf("delete: %w", err)
		}
	}
}

// deleteFailed backs the object's next delete off and reports a failure
// when it is new or its error changed: not at every try.
func (c *Controller) deleteFailed(file string, ref apply.Ref, err error) {
	key := ref.Key()
	r := c.retries[key]
	if r == nil {
		r = &retry{}
		c.retries[key] = r
	}
	r.delay = nextRetry(r.delay)
	r.next = c.now().Add(r.delay)
	if msg := err.Error(); msg != r.err {
		r.err = msg
		c.warn(file, "DeleteFailed", fmt.Errorf("%s: %w (tried again with back-off, at most %s apart)", ref, err, maxRetry))
	}
}

// path is a file's path in the manifests folder, for the log.
func (c *Controller) path(file string) string { return filepath.Join(c.cfg.Dir, file) }

// claimedElsewhere returns, for an object, the present file other than
// name that declares it ("" if none). A removed file declares nothing.
func claimedElsewhere(state map[string]FileState, name string, present map[string]bool) func(apply.Ref) string {
	return func(r apply.Ref) string {
		others := make([]string, 0, len(state))
		for other := range state {
			others = append(others, other)
		}
		sort.Strings(others)
		for _, other := range others {
			if other != name && present[other] && slices.ContainsFunc(state[other].Objects, r.SameObject) {
				return other
			}
		}
		return ""
	}
}

// union is a's refs plus those of b not in a.
func union(a, b []apply.Ref) []apply.Ref {
	out := slices.Clone(a)
	for _, r := range b {
		if !slices.ContainsFunc(out, r.SameObject) {
			out = append(out, r)
		}
	}
	return out
}

// warn logs a file's problem and records it as an event on the state
// ConfigMap (`kubectl get events -n kube-system`).
func (c *Controller) warn(file, reason string, err error) {
	c.cfg.Log.Error(err, "Manifest problem", "file", c.path(file), "reason", reason)
	if c.event != nil {
		c.event(reason, fmt.Sprintf("%s: %v", file, err))
	}
}

// configMapStore keeps the state in kube-system/kubling-manifests, one key
// per file. Anyone allowed to edit ConfigMaps in kube-system can edit it,
// so it is only a hint: see FileState.
type configMapStore struct {
	client kubernetes.Interface
	log    klog.Logger
	obj    *corev1.ConfigMap // as last read or written; events go to it
}

func (s *configMapStore) load(ctx context.Context) (map[string]FileState, error) {
	cms := s.client.CoreV1().ConfigMaps(metav1.NamespaceSystem)
	cm, err := cms.Get(ctx, StateConfigMap, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		cm, err = cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: StateConfigMap, Namespace: metav1.NamespaceSystem}}, metav1.CreateOptions{FieldManager: apply.FieldManager})
	}
	if err != nil {
		return nil, fmt.Errorf("manifests state: %w", err)
	}
	s.obj = cm
	state := map[string]FileState{}
	for name, raw := range cm.Data {
		var st FileState
		if err := json.Unmarshal([]byte(raw), &st); err != nil {
			// A hint only: an entry kubling cannot read is dropped.
			s.log.Error(err, "Manifests state entry unreadable; ignored", "configmap", metav1.NamespaceSystem+"/"+StateConfigMap, "key", name)
			continue
		}
		state[name] = st
	}
	return state, nil
}

func (s *configMapStore) save(ctx context.Context, state map[string]FileState) error {
	cm := s.obj.DeepCopy()
	cm.Data = map[string]string{}
	for n, st := range state {
		raw, err := json.Marshal(st)
		if err != nil {
			return fmt.Errorf("manifests state for %s: %w", n, err)
		}
		cm.Data[n] = string(raw)
	}
	updated, err := s.client.CoreV1().ConfigMaps(metav1.NamespaceSystem).Update(ctx, cm, metav1.UpdateOptions{FieldManager: apply.FieldManager})
	if err != nil {
		return fmt.Errorf("save manifests state: %w", err)
	}
	s.obj = updated
	return nil
}
