//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// claimAndPod is a claim with no class and a pod (user 1000, not root)
// that writes into it once and keeps what was there.
const claimAndPod = `apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: %[1]s, namespace: default}
spec:
  %[2]s
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 64Mi}}
---
apiVersion: v1
kind: Pod
metadata: {name: %[1]s, namespace: default}
spec:
  securityContext: {runAsUser: 1000, runAsGroup: 1000}
  containers:
  - name: c
    image: kubling.test/busybox:1
    imagePullPolicy: Never
    command: ["sh", "-c", "[ -f /data/first ] || date +%%s%%N > /data/first; exec sleep 100000"]
    volumeMounts: [{name: data, mountPath: /data}]
  volumes:
  - name: data
    persistentVolumeClaim: {claimName: %[1]s}
`

const retainClass = `apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: local-retain}
provisioner: kubling.io/local-path
reclaimPolicy: Retain
volumeBindingMode: WaitForFirstConsumer
`

// TestLocalStorage is issue 26's local volume test on one node: a claim
// with no class waits for its pod, then binds to a folder under
// --default-local-storage-path that a non-root pod writes; the data
// survives the pod's re-creation; deleting the claim removes the folder
// (Delete); a Retain class keeps it; a ReadWriteMany claim gets a clear
// Event; --disable local-storage removes the class.
func TestLocalStorage(t *testing.T) {
	s := newNodeServer(t)
	root := filepath.Join(filepath.Dir(s.dataDir), "volumes")
	s.start("--default-local-storage-path", root)
	if got := s.kubectl("get", "storageclass", "local-path", "-o", `jsonpath={.metadata.annotations.storageclass\.kubernetes\.io/is-default-class} {.provisioner} {.volumeBindingMode}`); got != "true kubling.io/local-path WaitForFirstConsumer" {
		t.Fatalf("local-path class: %q", got)
	}

	// The claim waits for a pod (WaitForFirstConsumer), then binds.
	claim := strings.SplitN(fmt.Sprintf(claimAndPod, "data", ""), "---", 2)
	apply(t, s, claim[0])
	time.Sleep(3 * time.Second)
	if phase := s.kubectl("get", "pvc", "data", "-o", "jsonpath={.status.phase}"); phase != "Pending" {
		t.Fatalf("claim without a pod: %s, want Pending", phase)
	}
	apply(t, s, claim[1])
	eventually(t, 2*time.Minute, "claim bound and pod running", func() string {
		got, _ := s.tryKubectl("get", "pvc,pod", "data", "-o", "jsonpath={.items[*].status.phase}")
		if got != "Bound Running" {
			return got
		}
		return ""
	})
	pv := s.kubectl("get", "pvc", "data", "-o", "jsonpath={.spec.volumeName}")
	folder := filepath.Join(root, pv)
	if got := s.kubectl("get", "pv", pv, "-o", "jsonpath={.spec.hostPath.path} {.spec.capacity.storage} {.spec.persistentVolumeReclaimPolicy} {.spec.nodeAffinity.required.nodeSelectorTerms[0].matchExpressions[0].values[0]}"); got != folder+" 64Mi Delete "+nodeName(t, s) {
		t.Errorf("volume: %q", got)
	}
	first := readFile(t, filepath.Join(folder, "first"))
	if fi, err := os.Stat(folder); err != nil || fi.Mode().Perm() != 0o777 {
		t.Errorf("folder %s: %v %v, want mode 0777", folder, fi, err)
	}

	// The data outlives the pod.
	s.kubectl("delete", "pod", "data", "--wait")
	apply(t, s, claim[1])
	waitRunning(t, s, "data")
	if got := s.kubectl("exec", "data", "--", "cat", "/data/first"); got != strings.TrimSpace(first) {
		t.Errorf("after re-creation the pod reads %q, wrote %q", got, first)
	}

	// Delete: the claim goes, then the volume, then the folder.
	s.kubectl("delete", "pod", "data", "--wait")
	s.kubectl("delete", "pvc", "data", "--wait")
	eventually(t, time.Minute, "volume and folder removed", func() string {
		if out, err := s.tryKubectl("get", "pv", pv); err == nil {
			return "volume still there: " + out
		}
		if _, err := os.Stat(folder); err == nil {
			return "folder still there"
		}
		return ""
	})

	// Retain: the volume is released and the folder kept.
	apply(t, s, retainClass)
	kept := strings.SplitN(fmt.Sprintf(claimAndPod, "kept", "storageClassName: local-retain"), "---", 2)
	apply(t, s, kept[0]+"---"+kept[1])
	waitRunning(t, s, "kept")
	keptPV := s.kubectl("get", "pvc", "kept", "-o", "jsonpath={.spec.volumeName}")
	s.kubectl("delete", "pod", "kept", "--wait")
	s.kubectl("delete", "pvc", "kept", "--wait")
	eventually(t, time.Minute, "retained volume released", func() string {
		if got, _ := s.tryKubectl("get", "pv", keptPV, "-o", "jsonpath={.status.phase}"); got != "Released" {
			return got
		}
		return ""
	})
	time.Sleep(3 * time.Second)
	if _, err := os.Stat(filepath.Join(root, keptPV, "first")); err != nil {
		t.Errorf("retained volume's data: %v", err)
	}

	// What a folder on one node cannot be: an Event on the claim.
	apply(t, s, strings.Replace(fmt.Sprintf(claimAndPod, "shared", ""), "[ReadWriteOnce]", "[ReadWriteMany]", 1))
	eventually(t, time.Minute, "ReadWriteMany refused with an Event", func() string {
		out, _ := s.tryKubectl("get", "events", "--field-selector", "involvedObject.kind=PersistentVolumeClaim,involvedObject.name=shared", "-o", "jsonpath={.items[*].message}")
		if !strings.Contains(out, "ReadWriteMany is not possible") {
			return out
		}
		return ""
	})
	s.kubectl("delete", "pod,pvc", "shared", "--wait=false")

	// --disable local-storage: the class goes.
	s.stop()
	s.start("--default-local-storage-path", root, "--disable", "local-storage")
	eventually(t, time.Minute, "class removed", func() string {
		if out, err := s.tryKubectl("get", "storageclass", "local-path"); err == nil {
			return out
		}
		return ""
	})
}

func waitRunning(t *testing.T, s *server, pod string) {
	t.Helper()
	eventually(t, 2*time.Minute, "pod "+pod+" running", func() string {
		got, _ := s.tryKubectl("get", "pod", pod, "-o", "jsonpath={.status.phase}")
		if got != "Running" {
			return got
		}
		return ""
	})
}

func nodeName(t *testing.T, s *server) string {
	t.Helper()
	return s.kubectl("get", "nodes", "-o", "jsonpath={.items[0].metadata.name}")
}
