package datadir

import (
	"strings"
	"testing"
)

func TestRunDirFollowsTheDataDir(t *testing.T) {
	if got := New("/var/lib/kubling/").RunDir(); got != "/run/kubling" {
		t.Fatalf("default data dir: run dir %s", got)
	}
	a, b := New("/tmp/a").RunDir(), New("/tmp/b").RunDir()
	if a == b || !strings.HasPrefix(a, "/run/kubling-") || len(a) != len("/run/kubling-")+12 {
		t.Fatalf("run dirs %s and %s", a, b)
	}
	if New("/tmp/a").RunDir() != a {
		t.Fatal("run dir is not stable")
	}
	if !strings.HasPrefix(New("/tmp/a").ContainerdSocket(), a+"/") {
		t.Fatal("containerd's socket is outside the run dir")
	}
}

func TestPathsStayUnderTheDataDir(t *testing.T) {
	l := New("/d")
	for _, p := range []string{l.Token(), l.AdminKubeconfig(), l.SQLiteDB(), l.KineSocket(), l.Manifests(), l.NodeCert("client-kubelet"),
		l.NodeServerCA(), l.KubeletDir(), l.AirgapImages(), l.ContainerdRoot(), l.CNIConfDir(), l.CrictlConfig(), l.PayloadRoot()} {
		if !strings.HasPrefix(p, "/d/") {
			t.Errorf("%s is outside the data dir", p)
		}
	}
	if l.Token() != "/d/server/token" || l.AirgapImages() != "/d/agent/images" || l.SQLiteDB() != "/d/server/db/state.db" {
		t.Fatal("a path users script against moved")
	}
}
