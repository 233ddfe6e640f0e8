package encryption

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	k8stypes "k8s.io/apimachinery/pkg/types"
	"k8s.io/apiserver/pkg/server/options/encryptionconfig"
	"k8s.io/apiserver/pkg/storage/value"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"
	k8stesting "k8s.io/client-go/testing"
)

var secretsGR = schema.GroupResource{Resource: "secrets"}

// load builds the apiserver's own transformer from the file at path, as
// the apiserver does at start and at each automatic reload.
func load(t *testing.T, path string) value.Transformer {
	t.Helper()
	cfg, err := encryptionconfig.LoadEncryptionConfig(context.Background(), path, true, "test")
	if err != nil {
		data, _ := os.ReadFile(path)
		t.Fatalf("the apiserver refuses %s: %v\n%s", path, err, redact(data))
	}
	return cfg.Transformers[secretsGR]
}

// redact keeps key secrets out of test logs.
func redact(data []byte) string {
	var out []string
	for _, l := range strings.Split(string(data), "\n") {
		if strings.Contains(l, "secret:") {
			l = l[:strings.Index(l, "secret:")] + "secret: <redacted>"
		}
		out = append(out, l)
	}
	return strings.Join(out, "\n")
}

func keyNames(t *testing.T, data []byte) []string {
	t.Helper()
	m, err := parseManaged(data)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, k := range m.keys() {
		names = append(names, k.Name)
	}
	return names
}

func encrypt(t *testing.T, tr value.Transformer, name, plain string) []byte {
	t.Helper()
	out, err := tr.TransformToStorage(context.Background(), []byte(plain), value.DefaultContext(name))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func decrypt(tr value.Transformer, name string, stored []byte) (string, bool, error) {
	out, stale, err := tr.TransformFromStorage(context.Background(), stored, value.DefaultContext(name))
	return string(out), stale, err
}

// TestStagesOneByOne walks a rotation's file through its stages: which
// keys, in which order, what encrypts, and that the apiserver's own loader
// accepts each file and reads what was written under the one before.
func TestStagesOneByOne(t *testing.T) {
	path := filepath.Join(t.TempDir(), "encryption-config.yaml")
	if err := Ensure(path); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	m, err := parseManaged(data)
	if err != nil || m.stage != StageIdle {
		t.Fatalf("a new configuration: stage %v, %v", m, err)
	}
	old := m.keys()[0].Name
	// The clock says the same second as the old key: the new key is still later.
	oldTime, _ := keyTime(old)
	now := oldTime.Add(300 * time.Millisecond)

	tr := load(t, path)
	stored := map[string][]byte{"idle": encrypt(t, tr, "a", "written-with-the-old-key")}
	wantStages := []Stage{StagePrepared, StageRotated, StageIdle}
	var newKey string
	for i, want := range wantStages {
		if m, err = m.advance(bytes.NewReader(bytes.Repeat([]byte{byte(i + 1)}, 64)), now); err != nil {
			t.Fatal(err)
		}
		if m.stage != want {
			t.Fatalf("step %d: stage %v, want %v", i+1, m.stage, want)
		}
		if data, err = m.marshal(); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if again, err := parseManaged(data); err != nil || again.stage != want {
			t.Fatalf("step %d: the file reads back as stage %v (%v): the file itself must tell the stage", i+1, again, err)
		}
		names := keyNames(t, data)
		if len(names) == 0 {
			t.Fatal("zero keys")
		}
		if i == 0 {
			newKey = names[1]
			if newKey <= old {
				t.Fatalf("new key %s is not later than %s", newKey, old)
			}
		}
		wantNames := map[Stage][]string{StagePrepared: {old, newKey}, StageRotated: {newKey, old}, StageIdle: {newKey}}[want]
		if fmt.Sprint(names) != fmt.Sprint(wantNames) {
			t.Fatalf("step %d: keys %v, want %v", i+1, names, wantNames)
		}
		if !strings.Contains(string(data), "identity: {}") || strings.Index(string(data), "identity") < strings.Index(string(data), "secretbox") {
			t.Fatalf("step %d: identity must stay last:\n%s", i+1, redact(data))
		}

		tr := load(t, path)
		// Everything written under the stage before still reads (the last
		// stage reads only what was rewritten: see TestRotatorResumes).
		for stage, s := range stored {
			if want == StageIdle && stage != "rotated" {
				continue
			}
			if got, _, err := decrypt(tr, "a", s); err != nil || !strings.HasPrefix(got, "written-") {
				t.Fatalf("step %d: a value written at %s does not read: %q %v", i+1, stage, got, err)
			}
		}
		encryptsWith := map[Stage]string{StagePrepared: old, StageRotated: newKey, StageIdle: newKey}[want]
		s := encrypt(t, tr, "a", "written-at-"+want.String())
		if !bytes.HasPrefix(s, []byte("k8s:enc:secretbox:v1:"+encryptsWith+":")) {
			t.Fatalf("step %d: writes are encrypted with %.40q, want %s", i+1, s, encryptsWith)
		}
		stored[map[Stage]string{StagePrepared: "prepared", StageRotated: "rotated", StageIdle: "done"}[want]] = s
	}
	// The old key is gone from the last file: a value still under it is
	// unreadable (which is why every Secret is rewritten first).
	if _, _, err := decrypt(load(t, path), "a", stored["idle"]); err == nil {
		t.Fatal("the old key still decrypts after the rotation")
	}
	if strings.Contains(string(data), old) {
		t.Fatal("the old key's name is still in the file")
	}
}

func TestRefusesConfigurationsKublingDoesNotManage(t *testing.T) {
	const k1 = "{name: kubling-20260101T000000Z, secret: " + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=}"
	const k2 = "{name: kubling-20260102T000000Z, secret: " + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=}"
	head := "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n"
	cases := map[string]string{
		"kms":            head + "- resources: [secrets]\n  providers:\n  - kms: {apiVersion: v2, name: vault, endpoint: unix:///kms.sock}\n  - identity: {}\n",
		"aescbc":         head + "- resources: [secrets]\n  providers:\n  - aescbc: {keys: [" + k1 + "]}\n  - identity: {}\n",
		"more resources": head + "- resources: [secrets, configmaps]\n  providers:\n  - secretbox: {keys: [" + k1 + "]}\n  - identity: {}\n",
		"no identity":    head + "- resources: [secrets]\n  providers:\n  - secretbox: {keys: [" + k1 + "]}\n",
		"three keys":     head + "- resources: [secrets]\n  providers:\n  - secretbox: {keys: [" + k1 + ", " + k2 + ", " + strings.Replace(k2, "0102", "0103", 1) + "]}\n  - identity: {}\n",
		"hand-named key": head + "- resources: [secrets]\n  providers:\n  - secretbox: {keys: [{name: mykey, secret: AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=}]}\n  - identity: {}\n",
		"same time":      head + "- resources: [secrets]\n  providers:\n  - secretbox: {keys: [" + k1 + ", " + strings.Replace(k1, "secret: A", "secret: B", 1) + "]}\n  - identity: {}\n",
		"short key":      head + "- resources: [secrets]\n  providers:\n  - secretbox: {keys: [{name: kubling-20260101T000000Z, secret: QUFB}]}\n  - identity: {}\n",
	}
	for name, cfg := range cases {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "encryption-config.yaml")
			if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
				t.Fatal(err)
			}
			// The server is not even asked: no kubeconfig exists.
			err := RotateKeys(context.Background(), path, filepath.Join(t.TempDir(), "none.sealed"), filepath.Join(t.TempDir(), "none.kubeconfig"), &bytes.Buffer{})
			if !errors.Is(err, errNotManaged) || !strings.Contains(err.Error(), path) || strings.Contains(err.Error(), "AAAA") {
				t.Fatalf("want a refusal naming %s, got %v", path, err)
			}
			if data, _ := os.ReadFile(path); string(data) != cfg {
				t.Fatal("a refused configuration was changed")
			}
		})
	}
}

// cluster models one apiserver with its datastore: Secrets stored as the
// apiserver's own transformers store them, the configuration in force
// loaded from the file only when the reload is waited for (as the
// automatic reload does, later).
type cluster struct {
	t       *testing.T
	path    string
	loaded  value.Transformer
	hash    string
	stored  map[string][]byte // Secret name → bytes in the datastore
	plain   map[string]string
	client  *fake.Clientset
	waits   int
	failAt  int // the failAt-th WaitLoaded fails (an interrupt), 0: never
	updates int
	failUpd int // the failUpd-th Secret update fails, 0: never
}

func newCluster(t *testing.T, secrets int) *cluster {
	path := filepath.Join(t.TempDir(), "tls", "encryption-config.yaml")
	if err := Ensure(path); err != nil {
		t.Fatal(err)
	}
	c := &cluster{t: t, path: path, stored: map[string][]byte{}, plain: map[string]string{}}
	c.restart()
	var objs []runtime.Object
	for i := 0; i < secrets; i++ {
		name := fmt.Sprintf("s%03d", i)
		c.plain[name] = "value-of-" + name
		c.stored[name] = encrypt(t, c.loaded, name, c.plain[name])
		objs = append(objs, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: k8stypes.UID("uid-" + name), ResourceVersion: "1"}, Data: map[string][]byte{"k": []byte(c.plain[name])}})
	}
	// A Secret stored before encryption was on (identity).
	c.plain["plain"] = "value-of-plain"
	c.stored["plain"] = []byte(c.plain["plain"])
	objs = append(objs, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "plain", Namespace: "other", UID: "uid-plain", ResourceVersion: "1"}})
	c.client = fake.NewClientset(objs...)
	c.client.PrependReactor("list", "secrets", c.listPaged)
	c.client.PrependReactor("update", "secrets", func(a k8stesting.Action) (bool, runtime.Object, error) {
		c.updates++
		if c.updates == c.failUpd {
			return true, nil, errors.New("connection reset (simulated interrupt)")
		}
		name := a.(k8stesting.UpdateAction).GetObject().(*corev1.Secret).Name
		// What the apiserver does: read (the stored value must decrypt),
		// write with the key that encrypts now.
		got, _, err := decrypt(c.loaded, name, c.stored[name])
		if err != nil || got != c.plain[name] {
			t.Fatalf("Secret %s does not decrypt with the configuration in force: %q %v", name, got, err)
		}
		c.stored[name] = encrypt(t, c.loaded, name, got)
		return false, nil, nil
	})
	return c
}

// listPaged serves Secrets two at a time, with continue tokens.
func (c *cluster) listPaged(a k8stesting.Action) (bool, runtime.Object, error) {
	opts := a.(k8stesting.ListActionImpl).GetListOptions()
	all, err := c.client.Tracker().List(corev1.SchemeGroupVersion.WithResource("secrets"), corev1.SchemeGroupVersion.WithKind("Secret"), "")
	if err != nil {
		return true, nil, err
	}
	items := all.(*corev1.SecretList).Items
	start := 0
	if opts.Continue != "" {
		fmt.Sscan(opts.Continue, &start)
	}
	if opts.Limit != 100 {
		c.t.Errorf("list limit %d", opts.Limit)
	}
	const page = 2
	end := min(start+page, len(items))
	out := &corev1.SecretList{Items: items[start:end]}
	if end < len(items) {
		out.Continue = fmt.Sprint(end)
	}
	return true, out, nil
}

// restart is the apiserver starting again: it loads whatever the file says.
func (c *cluster) restart() {
	data, err := os.ReadFile(c.path)
	if err != nil {
		c.t.Fatal(err)
	}
	c.loaded, c.hash = load(c.t, c.path), contentHash(data)
}

func (c *cluster) Reachable(context.Context) error { return nil }

func (c *cluster) WaitLoaded(_ context.Context, hash string) error {
	c.waits++
	c.checkReadable()
	if c.waits == c.failAt {
		return errors.New("interrupted (simulated)")
	}
	data, _ := os.ReadFile(c.path)
	if contentHash(data) != hash {
		c.t.Fatalf("waiting for %s, the file is %s", hash, contentHash(data))
	}
	c.restart()
	return nil
}

// checkReadable: every Secret decrypts with the file on disk (what a
// restart would load) and with the configuration in force.
func (c *cluster) checkReadable() {
	c.t.Helper()
	data, err := os.ReadFile(c.path)
	if err != nil {
		c.t.Fatal(err)
	}
	if info, _ := os.Stat(c.path); info.Mode().Perm() != 0o600 {
		c.t.Fatalf("mode %v", info.Mode())
	}
	if len(keyNames(c.t, data)) == 0 {
		c.t.Fatal("zero keys")
	}
	onDisk := load(c.t, c.path)
	for name, s := range c.stored {
		for what, tr := range map[string]value.Transformer{"the file": onDisk, "the configuration in force": c.loaded} {
			if got, _, err := decrypt(tr, name, s); err != nil || got != c.plain[name] {
				c.t.Fatalf("Secret %s is lost with %s: %q %v\n%s", name, what, got, err, redact(data))
			}
		}
	}
}

func (c *cluster) rotator(out *bytes.Buffer) *Rotator {
	return &Rotator{Path: c.path, Apiservers: c, Client: c.client, Out: out, now: func() time.Time { return time.Now().Add(time.Duration(c.waits) * time.Second) }}
}

// finished: one key, not the first one, and every Secret stored with it.
func (c *cluster) finished(first string) {
	c.t.Helper()
	c.checkReadable()
	data, _ := os.ReadFile(c.path)
	names := keyNames(c.t, data)
	if len(names) != 1 || names[0] == first {
		c.t.Fatalf("keys after the rotation: %v (first %s)", names, first)
	}
	for name, s := range c.stored {
		if !bytes.HasPrefix(s, []byte("k8s:enc:secretbox:v1:"+names[0]+":")) {
			c.t.Fatalf("Secret %s is stored as %.40q, not with %s", name, s, names[0])
		}
	}
}

func TestRotatorRotates(t *testing.T) {
	c := newCluster(t, 5)
	first := keyNames(t, mustRead(t, c.path))[0]
	var out bytes.Buffer
	if err := c.rotator(&out).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	c.finished(first)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	for i, want := range []string{"step 1/4: added key kubling-", "step 2/4: key kubling-", "step 3/4: rewrote 6 Secrets", "step 4/4: removed key " + first, "keys rotated"} {
		if i >= len(lines) || !strings.HasPrefix(lines[i], want) {
			t.Fatalf("line %d: want %q:\n%s", i+1, want, out.String())
		}
	}
	if len(lines) != 5 {
		t.Fatalf("one line per step:\n%s", out.String())
	}
	if c.waits != 4 {
		t.Errorf("%d waits for the apiserver, want 4 (the current file, then each write)", c.waits)
	}
	// Another rotation from there.
	second := keyNames(t, mustRead(t, c.path))[0]
	c.waits = 0
	if err := c.rotator(&out).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	c.finished(second)
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestRotatorResumes interrupts a rotation at each wait (the file is
// written, the apiserver has not loaded it) and in the middle of the
// rewrite, with and without a server restart, then runs it again: every
// Secret stays readable throughout, and the second run finishes.
func TestRotatorResumes(t *testing.T) {
	type tc struct {
		failAt, failUpd int
		restart         bool
		resumes         string
	}
	var cases []tc
	for failAt := 1; failAt <= 4; failAt++ {
		for _, restart := range []bool{false, true} {
			cases = append(cases, tc{failAt: failAt, restart: restart, resumes: map[int]string{1: "", 2: "step 1 of 4 done", 3: "step 2 of 4 done", 4: ""}[failAt]})
		}
	}
	cases = append(cases, tc{failUpd: 3, resumes: "step 2 of 4 done"}, tc{failUpd: 3, restart: true, resumes: "step 2 of 4 done"})
	for _, tc := range cases {
		t.Run(fmt.Sprintf("wait%d-update%d-restart=%v", tc.failAt, tc.failUpd, tc.restart), func(t *testing.T) {
			c := newCluster(t, 5)
			first := keyNames(t, mustRead(t, c.path))[0]
			c.failAt, c.failUpd = tc.failAt, tc.failUpd
			var out bytes.Buffer
			err := c.rotator(&out).Run(context.Background())
			if err == nil {
				t.Fatal("the interrupt was not reported")
			}
			if wantErr := map[int]string{2: "run rotate-keys again", 3: "run rotate-keys again", 4: "no longer has the old key"}[tc.failAt]; !strings.Contains(err.Error(), wantErr) {
				t.Errorf("the error does not say where it stands: %v", err)
			}
			c.checkReadable()
			if tc.restart {
				c.restart()
				c.checkReadable()
			}
			c.failAt, c.failUpd, c.waits = 0, 0, 10
			out.Reset()
			if err := c.rotator(&out).Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			if resumed := strings.Contains(out.String(), "resuming an interrupted rotation"); resumed != (tc.resumes != "") || !strings.Contains(out.String(), tc.resumes) {
				t.Errorf("want %q in:\n%s", tc.resumes, out.String())
			}
			if tc.failAt == 4 {
				// The old key was already gone from the file: the second run is a new rotation.
				if !strings.Contains(out.String(), "step 1/4") {
					t.Errorf("after a finished file, a new rotation:\n%s", out.String())
				}
				return
			}
			c.finished(first)
		})
	}
}

func TestRewriteSecretsRetriesConflictsAndSkipsDeleted(t *testing.T) {
	c := newCluster(t, 3)
	conflicts, deleted := 0, false
	c.client.PrependReactor("update", "secrets", func(a k8stesting.Action) (bool, runtime.Object, error) {
		s := a.(k8stesting.UpdateAction).GetObject().(*corev1.Secret)
		switch s.Name {
		case "s000":
			if conflicts == 0 {
				conflicts++
				return true, nil, apierrors.NewConflict(secretsGR, s.Name, errors.New("changed meanwhile"))
			}
		case "s001":
			deleted = true
			return true, nil, apierrors.NewNotFound(secretsGR, s.Name)
		}
		return false, nil, nil
	})
	n, err := rewriteSecrets(context.Background(), c.client)
	if err != nil {
		t.Fatal(err)
	}
	if conflicts != 1 || !deleted || n != 3 {
		t.Fatalf("conflicts %d, deleted %v, rewrote %d (want 3: four Secrets, one gone)", conflicts, deleted, n)
	}
}

func TestParseReloadMetrics(t *testing.T) {
	text := `# HELP apiserver_encryption_config_controller_last_config_info [ALPHA] Information
# TYPE apiserver_encryption_config_controller_last_config_info gauge
apiserver_encryption_config_controller_last_config_info{apiserver_id_hash="sha256:aa",hash="sha256:bb"} 1
apiserver_encryption_config_controller_automatic_reloads_total{apiserver_id_hash="sha256:aa",status="failure"} 2
apiserver_encryption_config_controller_automatic_reloads_total{apiserver_id_hash="sha256:aa",status="success"} 7
apiserver_encryption_config_controller_automatic_reload_last_timestamp_seconds{apiserver_id_hash="sha256:aa",status="success"} 1.7e+09
`
	m := parseReloadMetrics(text)
	if fmt.Sprint(m.loaded) != "[sha256:bb]" || m.failures != 2 {
		t.Fatalf("%+v", m)
	}
}

// fakeMetrics serves /metrics like an apiserver whose loaded configuration
// and failure count the test sets.
type fakeMetrics struct {
	mu       sync.Mutex
	hash     string
	failures int
	requests int
}

func (f *fakeMetrics) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests++
	if r.URL.Path != "/metrics" {
		http.NotFound(w, r)
		return
	}
	if f.hash != "" {
		fmt.Fprintf(w, "%s{apiserver_id_hash=\"sha256:1\",hash=%q} 1\n", metricLoadedConfig, f.hash)
	}
	fmt.Fprintf(w, "%s{apiserver_id_hash=\"sha256:1\",status=\"failure\"} %d\n", metricReloadsTotal, f.failures)
}

func (f *fakeMetrics) set(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn()
}

func newLocalApiserver(t *testing.T, h http.Handler) *clusterApiservers {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	client, err := kubernetes.NewForConfig(&rest.Config{Host: srv.URL, QPS: 1000, Burst: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return &clusterApiservers{local: &apiserver{client: client.CoreV1().RESTClient(), host: srv.URL}, timeout: 3 * time.Second, interval: 20 * time.Millisecond}
}

func TestLocalApiserverWaitsForTheReload(t *testing.T) {
	f := &fakeMetrics{hash: "sha256:old"}
	a := newLocalApiserver(t, f)
	ctx := context.Background()
	if err := a.Reachable(ctx); err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(200 * time.Millisecond)
		f.set(func() { f.hash = "sha256:new" })
	}()
	start := time.Now()
	if err := a.WaitLoaded(ctx, "sha256:new"); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) < 150*time.Millisecond {
		t.Fatal("returned before the reload")
	}

	// A reload that fails is reported, not waited out (the apiserver tries
	// again at each poll, so failures go on counting).
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
				f.set(func() { f.failures++ })
			}
		}
	}()
	if err := a.WaitLoaded(ctx, "sha256:newer"); err == nil || !strings.Contains(err.Error(), "failed to load") {
		t.Fatalf("failed reload: %v", err)
	}

	stop <- struct{}{}

	// One that never comes times out.
	a.timeout = 200 * time.Millisecond
	if err := a.WaitLoaded(ctx, "sha256:never"); err == nil || !strings.Contains(err.Error(), "has not taken") {
		t.Fatalf("no reload: %v", err)
	}

	// No encryption configuration reported.
	f.set(func() { f.hash = "" })
	if err := a.Reachable(ctx); err == nil || !strings.Contains(err.Error(), "reports no encryption configuration") {
		t.Fatalf("no configuration: %v", err)
	}
}

func TestLocalApiserverNotRunning(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	client, _ := kubernetes.NewForConfig(&rest.Config{Host: url})
	a := &clusterApiservers{local: &apiserver{client: client.CoreV1().RESTClient(), host: url}, timeout: time.Second, interval: 10 * time.Millisecond}
	err := a.Reachable(context.Background())
	if err == nil || !strings.Contains(err.Error(), "not running or not reachable at "+url) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("%v", err)
	}
}

func TestOneRotationAtATime(t *testing.T) {
	dir := t.TempDir()
	unlock, err := lockDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lockDir(dir); err == nil || !strings.Contains(err.Error(), "another") {
		t.Fatalf("second lock: %v", err)
	}
	unlock()
	unlock2, err := lockDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	unlock2()
}

func TestStatusShowsAnUnfinishedRotation(t *testing.T) {
	c := newCluster(t, 1)
	c.failAt = 2 // step 1 written, not loaded
	c.rotator(&bytes.Buffer{}).Run(context.Background())
	st, err := Read(c.path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Rotation != StagePrepared || len(st.Keys) != 2 || !strings.Contains(st.Rotation.String(), "step 1 of 4") {
		t.Fatalf("%+v %s", st, st.Rotation)
	}
}

// TestNewerFollowsTheRotation: each stage of a rotation is newer than every
// stage before it and than the last rotation's, never the other way; a
// configuration kubling does not manage is never newer nor older.
func TestNewerFollowsTheRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "encryption-config.yaml")
	if err := Ensure(path); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	m, err := parseManaged(data)
	if err != nil {
		t.Fatal(err)
	}
	seq := [][]byte{data}
	now, _ := keyTime(m.keys()[0].Name)
	for i := 0; i < 6; i++ { // two whole rotations
		if m, err = m.advance(bytes.NewReader(bytes.Repeat([]byte{byte(i + 1)}, 64)), now); err != nil {
			t.Fatal(err)
		}
		next, err := m.marshal()
		if err != nil {
			t.Fatal(err)
		}
		seq = append(seq, next)
	}
	for i := range seq {
		for j := range seq {
			if got, want := Newer(seq[i], seq[j]), i > j; got != want {
				t.Errorf("Newer(step %d, step %d) = %v, want %v", i, j, got, want)
			}
		}
	}
	hand := []byte("apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n  - aescbc: {keys: [{name: mine, secret: AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=}]}\n  - identity: {}\n")
	if Newer(hand, seq[0]) || Newer(seq[6], hand) {
		t.Error("a configuration kubling does not manage compares as newer or older")
	}
}

// TestWaitLoadedAsksEveryApiserverAndTheSeal: the wait lasts until the
// sealed copy and every apiserver the kubernetes Service lists (here a
// second one beside the local one) have the configuration.
func TestWaitLoadedAsksEveryApiserverAndTheSeal(t *testing.T) {
	local, other := &fakeMetrics{hash: "sha256:old"}, &fakeMetrics{hash: "sha256:old"}
	c := newLocalApiserver(t, local)
	otherSrv := httptest.NewServer(other)
	t.Cleanup(otherSrv.Close)
	otherClient, _ := kubernetes.NewForConfig(&rest.Config{Host: otherSrv.URL})
	c.others = map[string]*apiserver{"https://192.0.2.7:6443": {client: otherClient.CoreV1().RESTClient(), host: otherSrv.URL}}
	port, name := int32(6443), "https"
	c.client = fake.NewClientset(&discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "kubernetes", Namespace: "default", Labels: map[string]string{discoveryv1.LabelServiceName: "kubernetes"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"192.0.2.7"}}},
		Ports:       []discoveryv1.EndpointPort{{Name: &name, Port: &port}},
	})
	c.config = &rest.Config{Host: "https://127.0.0.1:6443"}
	var mu sync.Mutex
	sealed := "sha256:old"
	c.sealed = func() (string, error) { mu.Lock(); defer mu.Unlock(); return sealed, nil }

	done := make(chan error, 1)
	go func() { done <- c.WaitLoaded(context.Background(), "sha256:new") }()
	steps := []func(){
		func() { local.set(func() { local.hash = "sha256:new" }) },
		func() { mu.Lock(); sealed = "sha256:new"; mu.Unlock() },
		func() { other.set(func() { other.hash = "sha256:new" }) },
	}
	for i, step := range steps {
		time.Sleep(150 * time.Millisecond)
		select {
		case err := <-done:
			t.Fatalf("returned before step %d: %v", i+1, err)
		default:
		}
		step()
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("no return once everything has the configuration")
	}
	// The other apiserver failing to load it is reported with its address.
	other.set(func() { other.failures = 1 })
	c.timeout = time.Second
	go func() {
		time.Sleep(100 * time.Millisecond)
		other.set(func() { other.failures = 2 })
	}()
	mu.Lock()
	sealed = "sha256:newer"
	mu.Unlock()
	local.set(func() { local.hash = "sha256:newer" })
	if err := c.WaitLoaded(context.Background(), "sha256:newer"); err == nil || !strings.Contains(err.Error(), otherSrv.URL) || !errors.Is(err, errReloadFailed) {
		t.Fatalf("a failed reload elsewhere: %v", err)
	}
}
