package addons

import (
	"testing"

	"github.com/kubling/kubling/pkg/server/apply"
)

func TestUserOwned(t *testing.T) {
	if !UserOwned([]byte(UserOwnedMarker + "\napiVersion: v1\n")) {
		t.Fatal("marker on the first line not seen")
	}
	if !UserOwned([]byte("# my notes\n  " + UserOwnedMarker + "  \n")) {
		t.Fatal("marker on the second line not seen")
	}
	if UserOwned([]byte(Header("coredns") + "apiVersion: v1\n")) {
		t.Fatal("kubling's own header counts as user-owned")
	}
	if UserOwned([]byte("a: 1\nb: 2\nc: 3\nd: 4\ne: 5\n" + UserOwnedMarker)) {
		t.Fatal("marker deep in the file counts")
	}
}

func TestPruned(t *testing.T) {
	old := []apply.Ref{
		{APIVersion: "v1", Kind: "ConfigMap", Namespace: "x", Name: "a"},
		{APIVersion: "v1", Kind: "ConfigMap", Namespace: "x", Name: "b"},
		{APIVersion: "batch/v1beta1", Kind: "CronJob", Namespace: "x", Name: "c"},
	}
	current := []apply.Ref{
		{APIVersion: "v1", Kind: "ConfigMap", Namespace: "x", Name: "a"},
		{APIVersion: "batch/v1", Kind: "CronJob", Namespace: "x", Name: "c"},
	}
	got := Pruned(old, current)
	if len(got) != 1 || got[0].Name != "b" {
		t.Fatalf("pruned %v", got)
	}
}

func TestManifestNames(t *testing.T) {
	for name, want := range map[string]bool{"a.yaml": true, "b.yml": true, "c.json": true, ".hidden.yaml": false, "d.yaml.bak": false, "e.txt": false} {
		if Manifest(name) != want {
			t.Errorf("%s: %v", name, !want)
		}
	}
}

func TestClaimedElsewhereAndUnion(t *testing.T) {
	cm := func(name string) apply.Ref {
		return apply.Ref{APIVersion: "v1", Kind: "ConfigMap", Namespace: "x", Name: name}
	}
	state := map[string]FileState{
		"coredns.yaml":    {Objects: []apply.Ref{cm("a"), cm("b")}},
		"my-coredns.yaml": {Objects: []apply.Ref{cm("a")}},
	}
	claimed := claimedElsewhere(state, "coredns.yaml", map[string]bool{"coredns.yaml": true, "my-coredns.yaml": true})
	if claimed(cm("a")) != "my-coredns.yaml" || claimed(cm("b")) != "" {
		t.Fatal("claims wrong")
	}
	// A removed file declares nothing.
	if claimedElsewhere(state, "coredns.yaml", map[string]bool{"coredns.yaml": true})(cm("a")) != "" {
		t.Fatal("a removed file claims an object")
	}
	if got := union([]apply.Ref{cm("a")}, []apply.Ref{cm("a"), cm("c")}); len(got) != 2 || got[1].Name != "c" {
		t.Fatalf("union %v", got)
	}
}
