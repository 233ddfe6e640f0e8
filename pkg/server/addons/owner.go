package addons

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/kubling/kubling/pkg/server/apply"
)

// Ownership marks. kubling puts them on an object when its apply creates
// it, and deletes (prunes) only objects that still carry both and name the
// file being pruned: what kubling may delete is read from the live object,
// not from the state ConfigMap (which is only a list of where to look).
const (
	ManagedByLabel         = "kubling.io/managed-by"
	ManagedByValue         = "kubling"
	ManifestFileAnnotation = "kubling.io/manifest-file"
)

// stateFormat is the format of FileState this version writes. Entries
// below it come from a kubling that did not mark objects yet.
const stateFormat = 2

// Back-off for deletes that fail: 2 s, doubling, at most 5 min apart.
const (
	firstRetry = 2 * time.Second
	maxRetry   = 5 * time.Minute
)

// nextRetry is the wait after a failed delete, given the previous one
// (0 after the first failure).
func nextRetry(previous time.Duration) time.Duration {
	if previous <= 0 {
		return firstRetry
	}
	if previous >= maxRetry/2 {
		return maxRetry
	}
	return 2 * previous
}

// ownerFile is the manifest file a live object's marks name, and whether it
// carries kubling's marks at all (label and annotation both).
func ownerFile(obj *unstructured.Unstructured) (string, bool) {
	if obj == nil || obj.GetLabels()[ManagedByLabel] != ManagedByValue {
		return "", false
	}
	file := obj.GetAnnotations()[ManifestFileAnnotation]
	return file, file != ""
}

// mayDelete says whether kubling may delete the live object while pruning
// file: only when it carries kubling's marks and they name that file.
func mayDelete(live *unstructured.Unstructured, file string) bool {
	owner, ok := ownerFile(live)
	return ok && owner == file
}

// setMarks puts kubling's marks, naming file, on an object to be applied.
func setMarks(obj *unstructured.Unstructured, file string) {
	labels := obj.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	labels[ManagedByLabel] = ManagedByValue
	obj.SetLabels(labels)
	annotations := obj.GetAnnotations()
	if annotations == nil {
		annotations = map[string]string{}
	}
	annotations[ManifestFileAnnotation] = file
	obj.SetAnnotations(annotations)
}

// applyAction is what the controller does with one object of a file.
type applyAction int

const (
	// actCreate: there is no such object; create it, marked as kubling's.
	actCreate applyAction = iota
	// actUpdate: it is kubling's (marked); apply it (forced), marked for
	// the file that applies it now.
	actUpdate
	// actAdopt: made by a kubling from before the marks (see
	// decideApply); apply and mark it.
	actAdopt
	// actSkip: someone else's object. kubling neither applies to it nor
	// ever deletes it.
	actSkip
)

// decideApply chooses what to do with an object a file declares, given the
// live one (nil when there is none). legacy: the file's state entry was
// written by a kubling that did not mark objects, and lists this object.
//
// Someone else's object is skipped, not force-applied: a forced apply
// would take over its fields (and overwrite the owner's values) though
// kubling could never delete it; being left alone, with a warning, is
// the least surprising for an object kubling did not create.
//
// A legacy object is adopted only if kubling's field manager already
// applied to it: that is how the earlier kubling made and updated its
// objects, and kubling has stopped applying to unmarked objects, so no
// other object gets there. An edited state ConfigMap can thus at most hand
// back objects the old kubling already treated as its own.
func decideApply(live *unstructured.Unstructured, legacy bool) applyAction {
	switch {
	case live == nil:
		return actCreate
	case isMarked(live):
		return actUpdate
	case legacy && appliedByKubling(live):
		return actAdopt
	}
	return actSkip
}

func isMarked(obj *unstructured.Unstructured) bool {
	_, ok := ownerFile(obj)
	return ok
}

// appliedByKubling tells whether kubling's field manager has applied to
// the object (server-side apply, not an update).
func appliedByKubling(obj *unstructured.Unstructured) bool {
	for _, mf := range obj.GetManagedFields() {
		if mf.Manager == apply.FieldManager && mf.Operation == metav1.ManagedFieldsOperationApply {
			return true
		}
	}
	return false
}
