package manifests

import (
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

func TestCoreDNSRenders(t *testing.T) {
	out, err := Render("coredns", Values{ClusterDNS: "10.43.0.10", ClusterDomain: "cluster.local", Registry: "mirror.example/"})
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	for _, want := range []string{"clusterIP: 10.43.0.10", "kubernetes cluster.local in-addr.arpa", "image: mirror.example/registry.k8s.io/coredns/coredns:"} {
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
