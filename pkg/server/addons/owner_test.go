package addons

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kubling/kubling/pkg/server/apply"
)

// obj builds a live object: kind/namespace/name, labels and annotations as
// "k=v" pairs, managers as "name:Operation".
func obj(kind, ns, name string, labels, annotations map[string]string, managers ...string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetAPIVersion("v1")
	u.SetKind(kind)
	u.SetNamespace(ns)
	u.SetName(name)
	u.SetLabels(labels)
	u.SetAnnotations(annotations)
	var mf []metav1.ManagedFieldsEntry
	for _, m := range managers {
		n, op, _ := strings.Cut(m, ":")
		mf = append(mf, metav1.ManagedFieldsEntry{Manager: n, Operation: metav1.ManagedFieldsOperationType(op)})
	}
	u.SetManagedFields(mf)
	return u
}

var ours = map[string]string{ManagedByLabel: ManagedByValue}

func file(f string) map[string]string { return map[string]string{ManifestFileAnnotation: f} }

func TestMayDelete(t *testing.T) {
	for _, tc := range []struct {
		what string
		live *unstructured.Unstructured
		want bool
	}{
		{"no object", nil, false},
		{"someone else's", obj("ConfigMap", "x", "a", nil, nil, "kubectl-create:Update"), false},
		{"label only", obj("ConfigMap", "x", "a", ours, nil), false},
		{"annotation only", obj("ConfigMap", "x", "a", nil, file("app.yaml")), false},
		{"other label value", obj("ConfigMap", "x", "a", map[string]string{ManagedByLabel: "helm"}, file("app.yaml")), false},
		{"another file's", obj("ConfigMap", "x", "a", ours, file("other.yaml")), false},
		{"kubling's from this file", obj("ConfigMap", "x", "a", ours, file("app.yaml")), true},
		// Made by an earlier kubling (no marks): never deleted on a hint.
		{"applied by kubling, unmarked", obj("ConfigMap", "x", "a", nil, nil, "kubling:Apply"), false},
	} {
		if got := mayDelete(tc.live, "app.yaml"); got != tc.want {
			t.Errorf("%s: mayDelete %v, want %v", tc.what, got, tc.want)
		}
	}
}

func TestDecideApply(t *testing.T) {
	for _, tc := range []struct {
		what   string
		live   *unstructured.Unstructured
		legacy bool
		want   applyAction
	}{
		{"absent", nil, false, actCreate},
		{"kubling's", obj("ConfigMap", "x", "a", ours, file("app.yaml")), false, actUpdate},
		{"kubling's from another file", obj("ConfigMap", "x", "a", ours, file("other.yaml")), false, actUpdate},
		{"someone else's", obj("ConfigMap", "x", "a", nil, nil, "kubectl-create:Update"), false, actSkip},
		{"someone else's, listed in an old state", obj("ConfigMap", "x", "a", nil, nil, "kubectl-create:Update"), true, actSkip},
		{"updated (not applied) by a manager named kubling", obj("ConfigMap", "x", "a", nil, nil, "kubling:Update"), true, actSkip},
		{"earlier kubling's, not listed", obj("ConfigMap", "x", "a", nil, nil, "kubling:Apply"), false, actSkip},
		{"earlier kubling's, listed", obj("ConfigMap", "x", "a", nil, nil, "kubling:Apply", "kube-controller-manager:Update"), true, actAdopt},
	} {
		if got := decideApply(tc.live, tc.legacy); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.what, got, tc.want)
		}
	}
}

func TestNextRetry(t *testing.T) {
	var got []string
	d := time.Duration(0)
	for i := 0; i < 11; i++ {
		d = nextRetry(d)
		got = append(got, d.String())
	}
	want := "2s 4s 8s 16s 32s 1m4s 2m8s 4m16s 5m0s 5m0s 5m0s"
	if strings.Join(got, " ") != want {
		t.Fatalf("back-off %v, want %s", got, want)
	}
}

// fakeAPI is an API server in memory: enough of server-side apply for the
// controller's decisions.
type fakeAPI struct {
	objs     map[string]*unstructured.Unstructured
	rv       int
	deletes  []string // delete calls, by object
	failDel  error    // every delete fails with it
	raceNext bool     // the next create finds the object just made by someone else
	times    []time.Duration
	clock    *time.Time
	start    time.Time
}

func newFakeAPI(clock *time.Time) *fakeAPI {
	return &fakeAPI{objs: map[string]*unstructured.Unstructured{}, clock: clock, start: *clock}
}

func (f *fakeAPI) add(u *unstructured.Unstructured) {
	f.rv++
	u.SetUID(types.UID(fmt.Sprintf("uid-%d", f.rv)))
	u.SetResourceVersion(fmt.Sprint(f.rv))
	f.objs[apply.RefOf(u).Key()] = u
}

func (f *fakeAPI) Resolve(_ context.Context, o *unstructured.Unstructured) (apply.Ref, error) {
	if o.GetKind() != "Namespace" && o.GetNamespace() == "" {
		o.SetNamespace("default")
	}
	return apply.RefOf(o), nil
}

func (f *fakeAPI) Get(_ context.Context, ref apply.Ref) (*unstructured.Unstructured, error) {
	if u := f.objs[ref.Key()]; u != nil {
		return u.DeepCopy(), nil
	}
	return nil, nil
}

func (f *fakeAPI) ApplyRef(_ context.Context, ref apply.Ref, o *unstructured.Unstructured, force bool) (bool, error) {
	live := f.objs[ref.Key()]
	if f.raceNext && live == nil {
		f.raceNext = false
		f.add(obj(ref.Kind, ref.Namespace, ref.Name, nil, nil, "kubectl-create:Update"))
		live = f.objs[ref.Key()]
	}
	next := o.DeepCopy()
	mf := []metav1.ManagedFieldsEntry{{Manager: apply.FieldManager, Operation: metav1.ManagedFieldsOperationApply}}
	if live != nil {
		next.SetUID(live.GetUID())
		mf = append(live.GetManagedFields(), mf...)
	}
	next.SetManagedFields(mf)
	f.rv++
	next.SetResourceVersion(fmt.Sprint(f.rv))
	if live == nil {
		next.SetUID(types.UID(fmt.Sprintf("uid-%d", f.rv)))
	}
	f.objs[ref.Key()] = next
	return live == nil, nil
}

func (f *fakeAPI) Unmark(_ context.Context, ref apply.Ref, labels, annotations map[string]string) error {
	u := f.objs[ref.Key()]
	l, a := u.GetLabels(), u.GetAnnotations()
	for k, v := range labels {
		if l[k] != v {
			return errors.New("test failed")
		}
		delete(l, k)
	}
	for k, v := range annotations {
		if a[k] != v {
			return errors.New("test failed")
		}
		delete(a, k)
	}
	u.SetLabels(l)
	u.SetAnnotations(a)
	return nil
}

func (f *fakeAPI) DeleteExact(_ context.Context, ref apply.Ref, uid types.UID, rv string) error {
	f.deletes = append(f.deletes, ref.String())
	f.times = append(f.times, f.clock.Sub(f.start))
	if f.failDel != nil {
		return f.failDel
	}
	u := f.objs[ref.Key()]
	if u == nil {
		return nil
	}
	if u.GetUID() != uid || u.GetResourceVersion() != rv {
		return apierrors.NewConflict(schema.GroupResource{Resource: "x"}, ref.Name, errors.New("precondition failed"))
	}
	delete(f.objs, ref.Key())
	return nil
}

type fakeStore struct {
	state map[string]FileState
	saves int
}

func (s *fakeStore) load(context.Context) (map[string]FileState, error) {
	out := map[string]FileState{}
	for k, v := range s.state {
		out[k] = v
	}
	return out, nil
}

func (s *fakeStore) save(_ context.Context, state map[string]FileState) error {
	s.saves++
	s.state = map[string]FileState{}
	for k, v := range state {
		s.state[k] = v
	}
	return nil
}

// harness is a controller on a temporary folder, the fakes and a clock.
type harness struct {
	t      *testing.T
	c      *Controller
	api    *fakeAPI
	store  *fakeStore
	now    time.Time
	logs   []string
	events []string
}

func newHarness(t *testing.T) *harness {
	h := &harness{t: t, now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), store: &fakeStore{}}
	h.api = newFakeAPI(&h.now)
	log := funcr.New(func(prefix, args string) { h.logs = append(h.logs, args) }, funcr.Options{})
	h.c = New(Config{Dir: t.TempDir(), Log: log})
	h.c.api, h.c.store, h.c.now = h.api, h.store, func() time.Time { return h.now }
	h.c.event = func(reason, message string) { h.events = append(h.events, reason+": "+message) }
	h.c.settle = true
	return h
}

func (h *harness) write(name, content string) {
	h.t.Helper()
	if err := os.WriteFile(filepath.Join(h.c.cfg.Dir, name), []byte(content), 0o600); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) remove(name string) {
	h.t.Helper()
	if err := os.Remove(filepath.Join(h.c.cfg.Dir, name)); err != nil {
		h.t.Fatal(err)
	}
}

// tick is one look at the folder, the interval later than the last.
func (h *harness) tick() {
	h.t.Helper()
	h.now = h.now.Add(2 * time.Second)
	if err := h.c.sync(context.Background()); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) live(kind, ns, name string) *unstructured.Unstructured {
	return h.api.objs[apply.Ref{APIVersion: "v1", Kind: kind, Namespace: ns, Name: name}.Key()]
}

func (h *harness) count(list []string, substr string) int {
	n := 0
	for _, l := range list {
		if strings.Contains(l, substr) {
			n++
		}
	}
	return n
}

const twoConfigMaps = `apiVersion: v1
kind: ConfigMap
metadata: {name: a, namespace: x}
data: {v: "1"}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: b, namespace: x}
`

func TestMarksOnCreate(t *testing.T) {
	h := newHarness(t)
	h.write("app.yaml", twoConfigMaps)
	h.tick()
	h.tick()
	for _, n := range []string{"a", "b"} {
		if !mayDelete(h.live("ConfigMap", "x", n), "app.yaml") {
			t.Fatalf("ConfigMap x/%s not marked as kubling's from app.yaml: %v", n, h.live("ConfigMap", "x", n))
		}
	}
	if st := h.store.state["app.yaml"]; st.Format != stateFormat || len(st.Objects) != 2 {
		t.Fatalf("state %+v", st)
	}
	// Edited: b left the file and goes.
	h.write("app.yaml", strings.SplitN(twoConfigMaps, "---", 2)[0])
	h.tick()
	h.tick()
	if h.live("ConfigMap", "x", "b") != nil || h.live("ConfigMap", "x", "a") == nil {
		t.Fatal("b not pruned, or a gone")
	}
	h.remove("app.yaml")
	h.tick()
	if len(h.api.objs) != 0 || len(h.store.state) != 0 {
		t.Fatalf("left after removal: %v, state %v", h.api.objs, h.store.state)
	}
}

// An object that existed before kubling's first apply is not applied to,
// not marked, and not deleted when its file goes.
func TestPreExistingObjectIsNotTaken(t *testing.T) {
	h := newHarness(t)
	h.api.add(obj("ConfigMap", "x", "a", map[string]string{"mine": "yes"}, nil, "kubectl-create:Update"))
	h.write("app.yaml", twoConfigMaps)
	h.tick()
	h.tick()
	a := h.live("ConfigMap", "x", "a")
	if isMarked(a) || appliedByKubling(a) || a.GetResourceVersion() != "1" {
		t.Fatalf("the user's ConfigMap was applied to: %v", a)
	}
	if h.count(h.events, "ObjectNotOwned: app.yaml: ConfigMap x/a exists and was not created by kubling") != 1 {
		t.Fatalf("events %v", h.events)
	}
	if !isMarked(h.live("ConfigMap", "x", "b")) {
		t.Fatal("kubling's own ConfigMap not marked")
	}
	if st := h.store.state["app.yaml"]; len(st.Objects) != 1 {
		t.Fatalf("state lists the user's object: %+v", st)
	}
	h.remove("app.yaml")
	h.tick()
	if h.live("ConfigMap", "x", "a") == nil || h.live("ConfigMap", "x", "b") != nil {
		t.Fatalf("after removal: %v", h.api.objs)
	}
}

// Someone creates the object between kubling's look and its apply: the
// marks come off again and the object is left to them.
func TestCreateRace(t *testing.T) {
	h := newHarness(t)
	h.api.raceNext = true
	h.write("app.yaml", twoConfigMaps)
	h.tick()
	h.tick()
	if a := h.live("ConfigMap", "x", "a"); isMarked(a) {
		t.Fatalf("raced object kept kubling's marks: %v", a)
	}
	h.remove("app.yaml")
	h.tick()
	if h.live("ConfigMap", "x", "a") == nil {
		t.Fatal("raced object deleted")
	}
}

// The state ConfigMap is a hint: objects added to it are looked at, and
// left alone when they do not carry kubling's marks for that file.
func TestStateHintCannotDelete(t *testing.T) {
	h := newHarness(t)
	victim := obj("Namespace", "", "victim", nil, nil, "kubectl-create:Update")
	h.api.add(victim)
	h.api.add(obj("ConfigMap", "x", "theirs", ours, file("other.yaml")))
	h.write("app.yaml", twoConfigMaps)
	h.tick()
	h.tick()
	// Edited by someone with ConfigMap rights in kube-system: a file that
	// was never there, and an extra object in app.yaml's list.
	st := h.store.state["app.yaml"]
	st.Objects = append(st.Objects, apply.RefOf(victim))
	h.store.state["app.yaml"] = st
	h.store.state["evil.yaml"] = FileState{Format: stateFormat, Objects: []apply.Ref{apply.RefOf(victim), {APIVersion: "v1", Kind: "ConfigMap", Namespace: "x", Name: "theirs"}}}
	h.store.state["old.yaml"] = FileState{Objects: []apply.Ref{apply.RefOf(victim)}} // no format: "from an earlier kubling"
	h.c.state = nil                                                                  // read it again, as after a restart
	h.tick()
	h.write("app.yaml", strings.SplitN(twoConfigMaps, "---", 2)[0]) // prunes from app.yaml's list
	h.tick()
	h.tick()
	if h.live("Namespace", "", "victim") == nil || h.live("ConfigMap", "x", "theirs") == nil {
		t.Fatalf("deleted on the state's word: %v", h.api.objs)
	}
	if h.live("ConfigMap", "x", "b") != nil {
		t.Fatal("kubling's own pruned object kept")
	}
	if _, ok := h.store.state["evil.yaml"]; ok {
		t.Fatal("the made-up file's entry is kept")
	}
	// One line per object left alone (the victim, listed in app.yaml too,
	// is looked at once, through app.yaml).
	if n := h.count(h.logs, "does not carry kubling's marks"); n != 2 {
		t.Fatalf("%d log lines for objects left alone, want 2: %v", n, h.logs)
	}
	for _, d := range h.api.deletes {
		if !strings.Contains(d, "ConfigMap x/b") {
			t.Fatalf("delete attempted: %s", d)
		}
	}
}

// An empty file prunes nothing; removing it prunes.
func TestEmptyFilePrunesNothing(t *testing.T) {
	h := newHarness(t)
	h.write("app.yaml", twoConfigMaps)
	h.tick()
	h.tick()
	for _, empty := range []string{"", "# just a comment\n---\n", "apiVersion: v1\nkind: List\nitems: []\n"} {
		h.write("app.yaml", empty)
		for i := 0; i < 5; i++ {
			h.tick()
		}
		if len(h.api.objs) != 2 || len(h.api.deletes) != 0 {
			t.Fatalf("%q pruned: %v", empty, h.api.objs)
		}
	}
	if n := h.count(h.logs, "Manifest has no objects"); n != 3 {
		t.Fatalf("%d log lines for the empty file, want one per content: %v", n, h.logs)
	}
	// Back to the content it had: nothing to do.
	h.write("app.yaml", twoConfigMaps)
	h.tick()
	h.tick()
	h.write("app.yaml", "")
	h.tick()
	h.tick()
	h.remove("app.yaml")
	h.tick()
	if len(h.api.objs) != 0 {
		t.Fatalf("removing the emptied file left %v", h.api.objs)
	}
	// A new file that is empty is nothing at all.
	h.write("new.yaml", "")
	h.tick()
	h.tick()
	if _, ok := h.store.state["new.yaml"]; ok {
		t.Fatal("state for an empty new file")
	}
}

// A delete that keeps failing is tried with back-off, reported once per
// error, and does not rewrite the state at every look.
func TestFailingDeleteBacksOff(t *testing.T) {
	h := newHarness(t)
	h.write("app.yaml", twoConfigMaps)
	h.tick()
	h.tick()
	saves, events := h.store.saves, len(h.events)
	h.api.failDel = apierrors.NewForbidden(schema.GroupResource{Resource: "configmaps"}, "a", errors.New("denied by policy"))
	h.remove("app.yaml")
	for i := 0; i < 300; i++ { // 10 minutes
		h.tick()
	}
	var atA []string
	for i, d := range h.api.deletes {
		if d == "ConfigMap x/a" {
			atA = append(atA, h.api.times[i].String())
		}
	}
	// First try at the look that saw the file gone (6 s), then 2, 4, 8 …
	// 256 s later.
	want := "6s 8s 12s 20s 36s 1m8s 2m12s 4m20s 8m36s"
	if strings.Join(atA, " ") != want {
		t.Fatalf("delete tries at %v, want %s", atA, want)
	}
	if n := len(h.events) - events; n != 2 { // a and b: one each
		t.Fatalf("%d events, want 2: %v", n, h.events[events:])
	}
	if n := h.count(h.logs, "DeleteFailed"); n != 2 {
		t.Fatalf("%d failure log lines, want 2", n)
	}
	if h.store.saves != saves {
		t.Fatalf("state saved %d times while nothing changed", h.store.saves-saves)
	}
	// Another error is a new state: reported once more.
	h.api.failDel = errors.New("connection refused")
	for i := 0; i < 150; i++ {
		h.tick()
	}
	if n := h.count(h.events, "connection refused"); n != 2 {
		t.Fatalf("%d events for the new error, want 2", n)
	}
	// It goes through at the next try; the entry goes.
	h.api.failDel = nil
	for i := 0; i < 150 && len(h.api.objs) > 0; i++ {
		h.tick()
	}
	if len(h.api.objs) != 0 || len(h.store.state) != 0 {
		t.Fatalf("left: %v, state %v", h.api.objs, h.store.state)
	}
	if n := h.count(h.logs, "no longer fails to delete"); n != 2 {
		t.Fatalf("%d recovery log lines, want 2", n)
	}
}

// A prune that fails while the file stays is retried on its own, with
// back-off; the file is not re-applied for it.
func TestFailingPruneOfPresentFile(t *testing.T) {
	h := newHarness(t)
	h.write("app.yaml", twoConfigMaps)
	h.tick()
	h.tick()
	h.api.failDel = errors.New("boom")
	h.write("app.yaml", strings.SplitN(twoConfigMaps, "---", 2)[0])
	h.tick()
	h.tick()
	st := h.store.state["app.yaml"]
	if st.Hash == "" || len(st.Prune) != 1 || st.Prune[0].Name != "b" {
		t.Fatalf("state %+v", st)
	}
	saves := h.store.saves
	for i := 0; i < 30; i++ {
		h.tick()
	}
	if h.store.saves != saves || len(h.api.deletes) > 6 {
		t.Fatalf("%d saves, %d deletes in a minute", h.store.saves-saves, len(h.api.deletes))
	}
	h.api.failDel = nil
	for i := 0; i < 60 && h.live("ConfigMap", "x", "b") != nil; i++ {
		h.tick()
	}
	if h.live("ConfigMap", "x", "b") != nil || len(h.store.state["app.yaml"].Prune) != 0 {
		t.Fatal("pending prune never went through")
	}
}

// Objects made by a kubling from before the marks (state entry without a
// format) are marked when their file is applied again — at once, even
// unchanged — but only those kubling's field manager applied.
func TestLegacyAdoption(t *testing.T) {
	h := newHarness(t)
	h.write("app.yaml", twoConfigMaps)
	h.api.add(obj("ConfigMap", "x", "a", nil, nil, "kubling:Apply"))
	h.api.add(obj("ConfigMap", "x", "b", nil, nil, "kubectl-create:Update"))
	h.store.state = map[string]FileState{"app.yaml": {Hash: Hash([]byte(twoConfigMaps)), Objects: []apply.Ref{
		{APIVersion: "v1", Kind: "ConfigMap", Namespace: "x", Name: "a"},
		{APIVersion: "v1", Kind: "ConfigMap", Namespace: "x", Name: "b"},
	}}}
	h.tick()
	h.tick()
	if !mayDelete(h.live("ConfigMap", "x", "a"), "app.yaml") {
		t.Fatal("earlier kubling's object not adopted")
	}
	if isMarked(h.live("ConfigMap", "x", "b")) {
		t.Fatal("an object kubling never applied to was adopted")
	}
	if st := h.store.state["app.yaml"]; st.Format != stateFormat {
		t.Fatalf("state %+v", st)
	}
	// Adoption was a one-off: b is not taken at later applies either.
	h.write("app.yaml", twoConfigMaps+"data: {v: \"2\"}\n")
	h.tick()
	h.tick()
	if isMarked(h.live("ConfigMap", "x", "b")) {
		t.Fatal("b adopted later")
	}
}

// An object two files declare: removing the one it is marked for keeps
// it and hands it to the other, whose removal then deletes it.
func TestObjectInTwoFiles(t *testing.T) {
	h := newHarness(t)
	one := strings.SplitN(twoConfigMaps, "---", 2)[0]
	h.write("one.yaml", one)
	h.tick()
	h.tick()
	h.write("two.yaml", one)
	h.tick()
	h.tick()
	if owner, _ := ownerFile(h.live("ConfigMap", "x", "a")); owner != "two.yaml" {
		t.Fatalf("marked for %q", owner)
	}
	h.remove("two.yaml")
	h.tick()
	h.tick()
	if owner, _ := ownerFile(h.live("ConfigMap", "x", "a")); owner != "one.yaml" {
		t.Fatalf("after two.yaml went: marked for %q", owner)
	}
	h.remove("one.yaml")
	h.tick()
	if h.live("ConfigMap", "x", "a") != nil {
		t.Fatal("not deleted with the last file declaring it")
	}
	if !slices.Equal(h.api.deletes, []string{"ConfigMap x/a"}) {
		t.Fatalf("deletes %v", h.api.deletes)
	}
}
