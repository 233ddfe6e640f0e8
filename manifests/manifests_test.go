package manifests

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

func TestCoreDNSRenders(t *testing.T) {
	out, err := Render("coredns", Values{ClusterDNS: "10.43.0.10", ClusterDomain: "cluster.local", SystemDefaultRegistry: "mirror.example:5000"})
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	for _, want := range []string{"clusterIP: 10.43.0.10", "kubernetes cluster.local in-addr.arpa", "image: mirror.example:5000/coredns/coredns:v1.14.7"} {
		if !strings.Contains(s, want) {
			t.Errorf("rendered CoreDNS lacks %q", want)
		}
	}
	for i, doc := range strings.Split(s, "\n---\n") {
		var obj map[string]any
		if err := yaml.Unmarshal([]byte(doc), &obj); err != nil || obj["kind"] == nil {
			t.Errorf("document %d is not an object: %v", i, err)
		}
	}
	if got := strings.Join(Names(), ","); got != "calico,coredns,local-storage,nfs-csi,nvidia-device-plugin" {
		t.Errorf("names %v", got)
	}
	if _, err := Render("nope", Values{}); err == nil {
		t.Error("unknown add-on rendered")
	}
}

// With no system default registry CoreDNS runs from the image kubling
// ships, which the payload builds from payload/coredns/go.mod's CoreDNS:
// the versions must agree, or every node would look for an image it lacks.
func TestCoreDNSUsesTheShippedImage(t *testing.T) {
	mod, err := os.ReadFile("../payload/coredns/go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`github.com/coredns/coredns (v\S+)`).FindSubmatch(mod)
	if m == nil {
		t.Fatal("payload/coredns/go.mod requires no github.com/coredns/coredns")
	}
	out, err := Render("coredns", Values{ClusterDNS: "10.43.0.10", ClusterDomain: "cluster.local"})
	if err != nil {
		t.Fatal(err)
	}
	want := "image: localhost/kubling/coredns:" + string(m[1]) + "\n"
	if !strings.Contains(string(out), want) {
		t.Errorf("rendered CoreDNS lacks %q", strings.TrimSpace(want))
	}
	if src, _ := files.ReadFile("coredns.yaml"); !strings.Contains(string(src), `"registry.k8s.io/coredns/coredns:`+string(m[1])+`"`) {
		t.Errorf("the upstream image (with a system default registry) is not CoreDNS %s", m[1])
	}
}

func TestImage(t *testing.T) {
	for _, c := range []struct{ ref, registry, want string }{
		{"registry.k8s.io/coredns/coredns:v1.14.7", "", "registry.k8s.io/coredns/coredns:v1.14.7"},
		{"registry.k8s.io/coredns/coredns:v1.14.7", "mirror.example", "mirror.example/coredns/coredns:v1.14.7"},
		{"nvcr.io/nvidia/k8s-device-plugin:v0.17.0", "mirror:5000/", "mirror:5000/nvidia/k8s-device-plugin:v0.17.0"},
		{"busybox", "mirror.example", "mirror.example/library/busybox"},
	} {
		got, err := Image(c.ref, c.registry)
		if err != nil || got != c.want {
			t.Errorf("Image(%q, %q) = %q, %v; want %q", c.ref, c.registry, got, err, c.want)
		}
	}
	if _, err := Image("Not A Ref", "m"); err == nil {
		t.Error("bad reference accepted")
	}
	if _, err := Image("busybox", "bad host!"); err == nil {
		t.Error("bad registry accepted")
	}
}

// objects renders an add-on and decodes its documents.
func objects(t *testing.T, name string, v Values) []map[string]any {
	t.Helper()
	out, err := Render(name, v)
	if err != nil {
		t.Fatal(err)
	}
	var objs []map[string]any
	for i, doc := range strings.Split(string(out), "\n---\n") {
		var obj map[string]any
		if err := yaml.Unmarshal([]byte(doc), &obj); err != nil || obj["kind"] == nil {
			t.Fatalf("%s document %d is not an object: %v\n%s", name, i, err, doc)
		}
		objs = append(objs, obj)
	}
	return objs
}

func find(objs []map[string]any, kind, name string) map[string]any {
	for _, o := range objs {
		if o["kind"] == kind && o["metadata"].(map[string]any)["name"] == name {
			return o
		}
	}
	return nil
}

func TestNFSRenders(t *testing.T) {
	v := Values{KubeletDir: "/var/lib/kubling/agent/kubelet", SystemDefaultRegistry: "mirror.example"}
	objs := objects(t, "nfs-csi", v)
	if find(objs, "StorageClass", "nfs-csi") != nil {
		t.Fatal("StorageClass without --nfs-server")
	}
	if find(objs, "CSIDriver", "nfs.csi.k8s.io") == nil || find(objs, "DaemonSet", "csi-nfs-node") == nil || find(objs, "Deployment", "csi-nfs-controller") == nil {
		t.Fatal("driver objects missing")
	}
	out, _ := Render("nfs-csi", v)
	for _, want := range []string{"path: /var/lib/kubling/agent/kubelet/plugins_registry", "value: /var/lib/kubling/agent/kubelet/plugins/csi-nfsplugin/csi.sock", "image: mirror.example/sig-storage/nfsplugin:v4.13.5"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("nfs-csi lacks %q", want)
		}
	}
	if strings.Contains(string(out), "registry.k8s.io") {
		t.Error("an image kept registry.k8s.io despite the system default registry")
	}

	v.NFS = NFS{Server: "10.0.0.5", Share: "/export/k8s", MountOptions: []string{"nfsvers=4.1", "hard"}, ReclaimPolicy: "Retain", Default: true}
	sc := find(objects(t, "nfs-csi", v), "StorageClass", "nfs-csi")
	if sc == nil {
		t.Fatal("no StorageClass with --nfs-server")
	}
	params := sc["parameters"].(map[string]any)
	ann := sc["metadata"].(map[string]any)["annotations"].(map[string]any)
	if params["server"] != "10.0.0.5" || params["share"] != "/export/k8s" || sc["reclaimPolicy"] != "Retain" || sc["provisioner"] != "nfs.csi.k8s.io" || ann["storageclass.kubernetes.io/is-default-class"] != "true" {
		t.Fatalf("StorageClass %v", sc)
	}
	if opts := sc["mountOptions"].([]any); len(opts) != 2 || opts[1] != "hard" {
		t.Fatalf("mount options %v", opts)
	}
	v.NFS.Default = false
	if sc := find(objects(t, "nfs-csi", v), "StorageClass", "nfs-csi"); sc["metadata"].(map[string]any)["annotations"] != nil {
		t.Fatal("default annotation without Default")
	}
}

func TestNvidiaDevicePluginRenders(t *testing.T) {
	objs := objects(t, "nvidia-device-plugin", Values{KubeletDir: "/var/lib/kubling/agent/kubelet"})
	rc := find(objs, "RuntimeClass", "nvidia")
	if rc == nil || rc["handler"] != "nvidia" {
		t.Fatalf("RuntimeClass %v", rc)
	}
	ds := find(objs, "DaemonSet", "nvidia-device-plugin")
	if ds == nil {
		t.Fatal("no DaemonSet")
	}
	pod := ds["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)
	if pod["runtimeClassName"] != "nvidia" {
		t.Errorf("runtimeClassName %v", pod["runtimeClassName"])
	}
	term := pod["affinity"].(map[string]any)["nodeAffinity"].(map[string]any)["requiredDuringSchedulingIgnoredDuringExecution"].(map[string]any)["nodeSelectorTerms"].([]any)
	expr := term[0].(map[string]any)["matchExpressions"].([]any)[0].(map[string]any)
	if len(term) != 1 || expr["key"] != "nvidia.com/gpu.present" || expr["operator"] != "In" {
		t.Errorf("node affinity %v", term)
	}
	out, _ := Render("nvidia-device-plugin", Values{KubeletDir: "/k"})
	if !strings.Contains(string(out), "path: /k/device-plugins") || !strings.Contains(string(out), "value: volume-mounts") {
		t.Error("device-plugins path or list strategy missing")
	}
}

// Calico's pods must use kubling's CNI folders (not /etc/cni/net.d and
// /opt/cni/bin, which kubling's containerd does not read), the cluster's
// pod network in VXLAN mode, and the system default registry.
func TestCalicoRenders(t *testing.T) {
	out, err := Render("calico", Values{ClusterCIDR: "10.42.0.0/16", SystemDefaultRegistry: "mirror.example:5000",
		CNIConfDir: "/var/lib/kubling/agent/etc/cni/net.d", CNIPluginDir: "/var/lib/kubling/agent/cni-plugins"})
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	var node map[string]any
	for i, doc := range strings.Split(string(out), "\n---\n") {
		var obj map[string]any
		if err := yaml.Unmarshal([]byte(doc), &obj); err != nil || obj["kind"] == nil {
			t.Fatalf("document %d is not an object: %v\n%s", i, err, doc)
		}
		kinds[obj["kind"].(string)]++
		if obj["kind"] == "DaemonSet" {
			node = obj
		}
	}
	if kinds["CustomResourceDefinition"] != 18 || kinds["ClusterRoleBinding"] != 3 || kinds["DaemonSet"] != 1 || kinds["Deployment"] != 1 {
		t.Errorf("objects %v", kinds)
	}
	var ds struct {
		Spec struct {
			Template struct {
				Spec struct {
					InitContainers, Containers []struct {
						Image string
						Env   []struct{ Name, Value string }
					}
					Volumes []struct {
						Name     string
						HostPath struct{ Path string }
					}
				}
			}
		}
	}
	raw, _ := yaml.Marshal(node)
	if err := yaml.Unmarshal(raw, &ds); err != nil {
		t.Fatal(err)
	}
	pod := ds.Spec.Template.Spec
	env, images, volumes := map[string]string{}, []string{}, map[string]string{}
	for _, c := range append(pod.InitContainers, pod.Containers...) {
		images = append(images, c.Image)
		for _, e := range c.Env {
			env[e.Name] = e.Value
		}
	}
	for _, v := range pod.Volumes {
		volumes[v.Name] = v.HostPath.Path
	}
	if strings.Join(images, " ") != "mirror.example:5000/calico/cni:v3.28.5 mirror.example:5000/calico/node:v3.28.5" {
		t.Errorf("images %v", images)
	}
	for k, want := range map[string]string{"CALICO_IPV4POOL_CIDR": "10.42.0.0/16", "CALICO_NETWORKING_BACKEND": "vxlan", "CALICO_IPV4POOL_VXLAN": "Always",
		"CALICO_IPV4POOL_IPIP": "Never", "CNI_NET_DIR": "/var/lib/kubling/agent/etc/cni/net.d", "IP_AUTODETECTION_METHOD": "kubernetes-internal-ip"} {
		if env[k] != want {
			t.Errorf("calico-node's %s = %q, want %q", k, env[k], want)
		}
	}
	if volumes["cni-bin-dir"] != "/var/lib/kubling/agent/cni-plugins" || volumes["cni-net-dir"] != "/var/lib/kubling/agent/etc/cni/net.d" {
		t.Errorf("CNI folders %v: not kubling's", volumes)
	}
}

func TestLocalStorageClassIsDefaultOnlyWhenTold(t *testing.T) {
	for _, def := range []bool{true, false} {
		out, err := Render("local-storage", Values{LocalPathDefault: def})
		if err != nil {
			t.Fatal(err)
		}
		var sc struct {
			Kind     string
			Metadata struct {
				Name        string
				Annotations map[string]string
			}
			Provisioner       string
			VolumeBindingMode string `json:"volumeBindingMode"`
		}
		if err := yaml.Unmarshal(out, &sc); err != nil {
			t.Fatal(err)
		}
		if sc.Kind != "StorageClass" || sc.Metadata.Name != "local-path" || sc.Provisioner != "kubling.io/local-path" || sc.VolumeBindingMode != "WaitForFirstConsumer" {
			t.Errorf("rendered %+v", sc)
		}
		if got := sc.Metadata.Annotations["storageclass.kubernetes.io/is-default-class"] == "true"; got != def {
			t.Errorf("default %v: annotated %v", def, got)
		}
	}
}
