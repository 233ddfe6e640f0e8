package pki

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kubling/kubling/pkg/join"
)

var allLeaves = []string{APIServerServing, AdminClient, ControllerClient, SchedulerClient, APIServerKubelet, AuthProxyClient}
var allCAs = []string{ServerCA, ClientCA, RequestHeaderCA, KubeletCA}

// snapshot reads every file of dir by name.
func snapshot(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, e := range entries {
		out[e.Name()] = read(t, filepath.Join(dir, e.Name()))
	}
	return out
}

// TestRenewalDecision: the periodic call (Ensure, EnsureNode with a clock)
// renews a leaf with 89 days left and keeps one with 91; it keeps every
// key and never touches a CA.
func TestRenewalDecision(t *testing.T) {
	t0 := time.Now().UTC().Truncate(time.Second)
	at := func(d time.Duration) func() time.Time { return func() time.Time { return t0.Add(d) } }
	day := 24 * time.Hour
	dir, nodeDir := t.TempDir(), t.TempDir()
	o := opts(dir)
	o.Now = at(0)
	p, _, err := Ensure(o)
	if err != nil {
		t.Fatal(err)
	}
	ips := []net.IP{net.ParseIP("10.0.0.5")}
	if _, err := p.EnsureNode(nodeDir, "node1", ips, at(0)); err != nil {
		t.Fatal(err)
	}
	before, nodeBefore := snapshot(t, dir), snapshot(t, nodeDir)

	// 91 days left (NotAfter is t0+365d): nothing is due.
	o.Now = at(LeafValidity - 91*day)
	if _, written, err := Ensure(o); err != nil || len(written) != 0 {
		t.Fatalf("91 days left: wrote %v, %v; want nothing", written, err)
	}
	if written, err := p.EnsureNode(nodeDir, "node1", ips, o.Now); err != nil || len(written) != 0 {
		t.Fatalf("91 days left: node wrote %v, %v; want nothing", written, err)
	}

	// 89 days left: every leaf, and only the leaves' certificates.
	renewAt := t0.Add(LeafValidity - 89*day)
	o.Now = at(LeafValidity - 89*day)
	_, written, err := Ensure(o)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(written, allLeaves) {
		t.Fatalf("89 days left: wrote %v, want %v", written, allLeaves)
	}
	nodeWritten, err := p.EnsureNode(nodeDir, "node1", ips, o.Now)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(nodeWritten, join.Credentials) {
		t.Fatalf("89 days left: node wrote %v, want %v", nodeWritten, join.Credentials)
	}
	after := snapshot(t, dir)
	for name, data := range before {
		changed := !bytes.Equal(data, after[name])
		base, isCert := strings.CutSuffix(name, ".crt")
		wantChanged := isCert && slices.Contains(allLeaves, base)
		if changed != wantChanged {
			t.Errorf("%s changed=%v, want %v (CAs, keys and the service account key stay)", name, changed, wantChanged)
		}
	}
	nodeAfter := snapshot(t, nodeDir)
	for name, data := range nodeBefore {
		base, isCert := strings.CutSuffix(name, ".crt")
		wantChanged := isCert && slices.Contains(join.Credentials, base)
		if changed := !bytes.Equal(data, nodeAfter[name]); changed != wantChanged {
			t.Errorf("node %s changed=%v, want %v", name, changed, wantChanged)
		}
	}
	for _, name := range allLeaves {
		c := leafCert(t, p, name)
		if !c.NotAfter.Equal(renewAt.Add(LeafValidity)) {
			t.Errorf("%s NotAfter %v, want %v", name, c.NotAfter, renewAt.Add(LeafValidity))
		}
	}
	// The renewed certificate still matches the kept key (parsePair checks).
	o.Now = at(LeafValidity - 89*day + time.Hour)
	if _, written, err := Ensure(o); err != nil || len(written) != 0 {
		t.Fatalf("after renewal: wrote %v, %v; want nothing", written, err)
	}
}

// A leaf whose key is gone gets a new key (and a certificate for it).
func TestMissingLeafKeyReplaced(t *testing.T) {
	dir := t.TempDir()
	p, _, err := Ensure(opts(dir))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(p.Key(AdminClient)); err != nil {
		t.Fatal(err)
	}
	_, written, err := Ensure(opts(dir))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(written, []string{AdminClient}) {
		t.Fatalf("wrote %v", written)
	}
	if _, err := parsePair(read(t, p.Cert(AdminClient)), read(t, p.Key(AdminClient))); err != nil {
		t.Fatalf("new pair does not match: %v", err)
	}
}

func TestList(t *testing.T) {
	root := t.TempDir()
	serverDir, nodeDir := filepath.Join(root, "server", "tls"), filepath.Join(root, "agent", "tls")
	o := opts(serverDir)
	p, _, err := Ensure(o)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.EnsureNode(nodeDir, "node1", nil, nil); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	list, err := List(root, []string{serverDir, nodeDir, filepath.Join(root, "missing")}, now)
	if err != nil {
		t.Fatal(err)
	}
	// 4 CAs and 6 leaves; 4 node leaves and the 2 CAs a node trusts.
	if len(list) != 16 {
		t.Fatalf("listed %d certificates, want 16: %+v", len(list), list)
	}
	byFile := map[string]CertInfo{}
	for _, i := range list {
		byFile[i.File] = i
	}
	admin, ok := byFile[filepath.Join("server", "tls", "client-admin.crt")]
	if !ok || admin.Subject != "system:admin" || !strings.HasPrefix(admin.Issuer, "kubling-client-ca@") || admin.CA || admin.DaysLeft != 364 {
		t.Fatalf("admin %+v", admin)
	}
	kubelet := byFile[filepath.Join("agent", "tls", "serving-kubelet.crt")]
	if kubelet.Subject != "node1" || !strings.HasPrefix(kubelet.Issuer, "kubling-kubelet-ca@") {
		t.Fatalf("kubelet serving %+v", kubelet)
	}
	if ca := byFile[filepath.Join("server", "tls", "server-ca.crt")]; !ca.CA || ca.DaysLeft < 3000 {
		t.Fatalf("server CA %+v", ca)
	}
	if !slices.IsSortedFunc(list, func(a, b CertInfo) int { return strings.Compare(a.File, b.File) }) {
		t.Fatal("not sorted by file")
	}
	expired, err := List(root, []string{serverDir}, now.Add(400*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range expired {
		if !i.CA && i.DaysLeft >= 0 {
			t.Fatalf("%s: %d days left after 400 days", i.File, i.DaysLeft)
		}
	}
}

func TestRemoveLeaves(t *testing.T) {
	dir, nodeDir := t.TempDir(), t.TempDir()
	p, _, err := Ensure(opts(dir))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.EnsureNode(nodeDir, "node1", nil, nil); err != nil {
		t.Fatal(err)
	}
	before, nodeBefore := snapshot(t, dir), snapshot(t, nodeDir)
	if _, err := RemoveLeaves([]string{dir}, []string{"ldap"}); err == nil {
		t.Fatal("unknown service accepted")
	}

	// One service: only its files.
	removed, err := RemoveLeaves([]string{dir, nodeDir}, []string{"scheduler"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{p.Cert(SchedulerClient), p.Key(SchedulerClient)}; !slices.Equal(removed, want) {
		t.Fatalf("removed %v, want %v", removed, want)
	}

	// All: every leaf, no CA, no service account key; the next start
	// issues them with new keys.
	if _, err := RemoveLeaves([]string{dir, nodeDir}, nil); err != nil {
		t.Fatal(err)
	}
	left := snapshot(t, dir)
	for _, ca := range allCAs {
		if !bytes.Equal(left[ca+".crt"], before[ca+".crt"]) || !bytes.Equal(left[ca+".key"], before[ca+".key"]) {
			t.Fatalf("CA %s touched", ca)
		}
	}
	if _, ok := left[ServiceAccountKey]; !ok {
		t.Fatal("service account key removed")
	}
	for _, l := range allLeaves {
		if _, ok := left[l+".crt"]; ok {
			t.Fatalf("%s left", l)
		}
	}
	if got := len(snapshot(t, nodeDir)); got != 2 {
		t.Fatalf("node dir keeps %d files, want the 2 CA certificates", got)
	}
	_, written, err := Ensure(opts(dir))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(written, allLeaves) {
		t.Fatalf("next start wrote %v", written)
	}
	if _, err := p.EnsureNode(nodeDir, "node1", nil, nil); err != nil {
		t.Fatal(err)
	}
	after, nodeAfter := snapshot(t, dir), snapshot(t, nodeDir)
	for _, l := range allLeaves {
		if bytes.Equal(after[l+".key"], before[l+".key"]) {
			t.Fatalf("%s kept its key", l)
		}
	}
	for _, cred := range join.Credentials {
		if bytes.Equal(nodeAfter[cred+".key"], nodeBefore[cred+".key"]) {
			t.Fatalf("node %s kept its key", cred)
		}
	}
}
