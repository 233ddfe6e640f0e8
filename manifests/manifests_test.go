package manifests

import (
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
	if got := Names(); len(got) != 1 || got[0] != "coredns" {
		t.Errorf("names %v", got)
	}
	if _, err := Render("nope", Values{}); err == nil {
		t.Error("unknown add-on rendered")
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
