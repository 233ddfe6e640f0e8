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

const userApp = `apiVersion: v1
kind: Namespace
metadata: {name: mf}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: a, namespace: mf}
data: {v: "1"}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: b, namespace: mf}
data: {v: "1"}
`

// TestManifests is issue 5's controller test against the real apiserver:
// bundled files rendered into the folder, a user's file applied, updated,
// pruned and removed, a broken file reported without harm, a user-owned
// bundled file kept across restarts, --disable removing an add-on and its
// objects, and --system-default-registry rewriting bundled images.
func TestManifests(t *testing.T) {
	s := newServer(t)
	s.start("--system-default-registry", "mirror.example:5000",
		"--nfs-server", "10.0.0.5", "--nfs-share", "/export/k8s", "--nfs-mount-options", "nfsvers=4.2", "--nfs-mount-options", "hard")
	dir := filepath.Join(s.dataDir, "server", "manifests")
	coredns := filepath.Join(dir, "coredns.yaml")
	content := readFile(t, coredns)
	if !strings.Contains(content, "Bundled add-on coredns") || !strings.Contains(content, "image: mirror.example:5000/coredns/coredns:v1.14.7") {
		t.Fatalf("coredns.yaml as written:\n%s", content)
	}
	if got := s.kubectl("get", "deploy", "-n", "kube-system", "coredns", "-o", "jsonpath={.spec.template.spec.containers[0].image}"); got != "mirror.example:5000/coredns/coredns:v1.14.7" {
		t.Fatalf("CoreDNS image %q", got)
	}

	// NFS: the driver's objects, and the StorageClass from the flags, default
	// because no other class is.
	for _, obj := range []string{"csidriver/nfs.csi.k8s.io", "-n kube-system daemonset/csi-nfs-node", "-n kube-system deployment/csi-nfs-controller"} {
		if _, err := s.tryKubectl(append([]string{"get"}, strings.Fields(obj)...)...); err != nil {
			t.Errorf("%s: %v", obj, err)
		}
	}
	sc := s.kubectl("get", "storageclass", "nfs-csi", "-o", `jsonpath={.provisioner} {.parameters.server} {.parameters.share} {.reclaimPolicy} {.mountOptions} {.metadata.annotations.storageclass\.kubernetes\.io/is-default-class}`)
	if sc != `nfs.csi.k8s.io 10.0.0.5 /export/k8s Delete ["nfsvers=4.2","hard"] true` {
		t.Errorf("nfs-csi StorageClass: %q", sc)
	}

	// A user's file: applied; edited (one object changed, one removed):
	// updated and pruned.
	app := filepath.Join(dir, "app.yaml")
	writeFile(t, app, userApp)
	eventually(t, time.Minute, "the user's objects", func() string {
		out, err := s.tryKubectl("get", "cm", "-n", "mf", "-o", "name")
		if err != nil || !strings.Contains(out, "configmap/a") || !strings.Contains(out, "configmap/b") {
			return out
		}
		return ""
	})
	edited := strings.Replace(userApp, `metadata: {name: a, namespace: mf}
data: {v: "1"}`, `metadata: {name: a, namespace: mf}
data: {v: "2"}`, 1)
	edited = edited[:strings.LastIndex(edited, "---")]
	writeFile(t, app, edited)
	eventually(t, time.Minute, "update and prune", func() string {
		v, _ := s.tryKubectl("get", "cm", "-n", "mf", "a", "-o", "jsonpath={.data.v}")
		out, err := s.tryKubectl("get", "cm", "-n", "mf", "-o", "name")
		if err != nil || v != "2" || strings.Contains(out, "configmap/b") {
			return "a=" + v + " objects: " + out
		}
		return ""
	})

	// A broken file: an event names it and the object; the server goes on.
	writeFile(t, filepath.Join(dir, "broken.yaml"), "apiVersion: v1\nkind: NoSuchKind\nmetadata: {name: x}\n")
	writeFile(t, filepath.Join(dir, "garbage.yaml"), "apiVersion: v1\nkind: ConfigMap\n  metadata: [\n")
	eventually(t, time.Minute, "events for broken files", func() string {
		out, _ := s.tryKubectl("get", "events", "-n", "kube-system", "--field-selector", "involvedObject.name=kubling-manifests", "-o", "custom-columns=R:.reason,M:.message", "--no-headers")
		if !strings.Contains(out, "broken.yaml: NoSuchKind x") || !strings.Contains(out, "garbage.yaml: document 1") {
			return out
		}
		return ""
	})
	eventually(t, 10*time.Second, "a log line naming the broken file", func() string {
		if !strings.Contains(s.out.String(), `file="`+filepath.Join(dir, "broken.yaml")+`"`) {
			return "not logged"
		}
		return ""
	})
	if _, err := s.tryKubectl("get", "--raw", "/readyz"); err != nil {
		t.Fatal("server unhealthy after broken files:", err)
	}

	// Removing the file deletes its objects.
	for _, f := range []string{"app.yaml", "broken.yaml", "garbage.yaml"} {
		if err := os.Remove(filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, time.Minute, "objects of the removed file gone", func() string {
		cm, err := s.tryKubectl("get", "cm", "-n", "mf", "a", "--ignore-not-found", "-o", "name")
		if err != nil || cm != "" {
			return fmt.Sprintf("configmap a: %q %v", cm, err)
		}
		return ""
	})

	// Never two default StorageClasses: with another default present,
	// nfs-csi stops being one, even when asked.
	writeFile(t, filepath.Join(dir, "local.yaml"), `apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: local
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: kubernetes.io/no-provisioner
`)
	eventually(t, time.Minute, "the user's default StorageClass", func() string {
		if _, err := s.tryKubectl("get", "storageclass", "local"); err != nil {
			return err.Error()
		}
		return ""
	})
	s.stop()
	s.start("--nfs-server", "10.0.0.5", "--nfs-share", "/export/k8s", "--nfs-default-class", "true")
	if d := s.kubectl("get", "storageclass", "nfs-csi", "-o", `jsonpath={.metadata.annotations.storageclass\.kubernetes\.io/is-default-class}`); d != "" {
		t.Errorf("nfs-csi is still a default beside another: %q", d)
	}
	if !strings.Contains(s.out.String(), "nfs-csi is not made the default StorageClass") {
		t.Error("no log line about the default StorageClass")
	}

	// A bundled file made user-owned keeps the user's edit across restarts.
	s.stop()
	owned := "# kubling: user-owned\n" + strings.Replace(content, "replicas: 1", "replicas: 2", 1)
	if owned == "# kubling: user-owned\n"+content {
		t.Fatal("the CoreDNS manifest has no `replicas: 1` to edit")
	}
	writeFile(t, coredns, owned)
	s.start()
	if readFile(t, coredns) != owned {
		t.Fatal("user-owned coredns.yaml was rewritten")
	}
	eventually(t, time.Minute, "the user's edit applied", func() string {
		r, _ := s.tryKubectl("get", "deploy", "-n", "kube-system", "coredns", "-o", "jsonpath={.spec.replicas}")
		if r != "2" {
			return "replicas " + r
		}
		return ""
	})
	// Without --nfs-server the NFS driver is not deployed: its file and
	// objects go (the StorageClass with them).
	if _, err := os.Stat(filepath.Join(dir, "nfs-csi.yaml")); !os.IsNotExist(err) {
		t.Errorf("nfs-csi.yaml without --nfs-server: %v", err)
	}
	eventually(t, time.Minute, "nfs-csi removed without --nfs-server", func() string {
		out, err := s.tryKubectl("get", "csidriver,storageclass,daemonset,deployment", "-A", "-o", "name")
		if err != nil || strings.Contains(out, "nfs") {
			return fmt.Sprintf("%s %v", out, err)
		}
		return ""
	})

	// --disable: the objects go; the user-owned file stays. A bundled file
	// that is not user-owned is removed with its objects.
	s.stop()
	s.start("--disable", "coredns")
	eventually(t, time.Minute, "CoreDNS removed", func() string {
		out, err := s.tryKubectl("get", "deploy,svc,cm", "-n", "kube-system", "-o", "name")
		if err != nil || strings.Contains(out, "coredns") || strings.Contains(out, "kube-dns") {
			return fmt.Sprintf("%s %v", out, err)
		}
		return ""
	})
	if readFile(t, coredns) != owned {
		t.Error("--disable removed the user's own file")
	}
	if err := os.Remove(coredns); err != nil {
		t.Fatal(err)
	}
	s.stop()
	s.start()
	eventually(t, time.Minute, "CoreDNS back from the bundled file", func() string {
		if _, err := s.tryKubectl("get", "deploy", "-n", "kube-system", "coredns"); err != nil {
			return err.Error()
		}
		return ""
	})
	s.stop()
	s.start("--disable", "coredns")
	if _, err := os.Stat(coredns); !os.IsNotExist(err) {
		t.Errorf("--disable left the bundled file: %v", err)
	}
	eventually(t, time.Minute, "CoreDNS removed again", func() string {
		if out, err := s.tryKubectl("get", "deploy", "-n", "kube-system", "coredns", "--ignore-not-found", "-o", "name"); err != nil || out != "" {
			return fmt.Sprintf("%q %v", out, err)
		}
		return ""
	})
	s.stop()
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
