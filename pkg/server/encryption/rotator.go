package encryption

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/retry"

	"github.com/kubling/kubling/pkg/fileutil"
)

// Apiservers are the cluster's apiservers, as a rotation waits for them.
// Today that is the one on this server. In HA an implementation must ask
// every server's apiserver (and get the file to every server first): a key
// may only encrypt once all of them can decrypt with it, and the old key may
// only go once none of them encrypts with it.
type Apiservers interface {
	// Reachable says why the apiservers cannot be asked, fast.
	Reachable(ctx context.Context) error
	// WaitLoaded returns once every apiserver encrypts and decrypts with the
	// configuration whose content hash is hash (see contentHash).
	WaitLoaded(ctx context.Context, hash string) error
}

// Rotator rotates the keys of the configuration at Path (see Stage), on the
// running cluster.
type Rotator struct {
	Path       string
	Apiservers Apiservers
	Client     kubernetes.Interface // rewrites the Secrets
	Out        io.Writer            // one line per step

	now    func() time.Time
	random io.Reader
}

// RotateKeys rotates the keys of the configuration at path on the running
// server that kubeconfig (the server's admin kubeconfig) reaches.
func RotateKeys(ctx context.Context, path, kubeconfig string, out io.Writer) error {
	// A configuration kubling did not make is refused before anything else.
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read %s (is this a server's data dir?): %w", path, err)
	}
	if _, err := parseManaged(data); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return fmt.Errorf("admin kubeconfig: %w", err)
	}
	cfg.Timeout = 15 * time.Second
	cfg.UserAgent = "kubling-secrets-encrypt"
	// The rewrite of every Secret is paced so a small server keeps serving.
	cfg.QPS, cfg.Burst = 20, 40
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	r := &Rotator{
		Path:       path,
		Apiservers: &localApiserver{client: client.CoreV1().RESTClient(), host: cfg.Host, timeout: reloadTimeout, interval: 2 * time.Second},
		Client:     client,
		Out:        out,
	}
	return r.Run(ctx)
}

// Run takes the configuration from whatever stage it is in to a new key
// with the old one gone. Each step writes the file atomically and waits for
// the apiservers to load it before the next; an interrupted run leaves a
// file that every Secret can be read with, and the next run goes on from it.
func (r *Rotator) Run(ctx context.Context) error {
	if r.now == nil {
		r.now = time.Now
	}
	if r.random == nil {
		r.random = rand.Reader
	}
	unlock, err := lockDir(filepath.Dir(r.Path))
	if err != nil {
		return err
	}
	defer unlock()

	data, err := os.ReadFile(r.Path)
	if err != nil {
		return fmt.Errorf("read %s (is this a server's data dir?): %w", r.Path, err)
	}
	m, err := parseManaged(data)
	if err != nil {
		return fmt.Errorf("%s: %w", r.Path, err)
	}
	if err := r.Apiservers.Reachable(ctx); err != nil {
		return err
	}
	// What the file says must be in force before it moves on: after an
	// interrupted run the apiserver may not have loaded it yet.
	if err := r.Apiservers.WaitLoaded(ctx, contentHash(data)); err != nil {
		return err
	}
	if m.stage != StageIdle {
		fmt.Fprintf(r.Out, "resuming an interrupted rotation (%s)\n", m.stage)
	}

	if m.stage == StageIdle {
		start := r.now()
		if m, err = r.write(ctx, m); err != nil {
			return err
		}
		fmt.Fprintf(r.Out, "step 1/4: added key %s for decryption only; the server has loaded it (%s)\n", m.keys()[1].Name, since(r.now, start))
	}
	if m.stage == StagePrepared {
		start := r.now()
		if m, err = r.write(ctx, m); err != nil {
			return err
		}
		fmt.Fprintf(r.Out, "step 2/4: key %s encrypts new writes, %s still decrypts (%s)\n", m.keys()[0].Name, m.keys()[1].Name, since(r.now, start))
	}
	// StageRotated: every apiserver encrypts with the new key.
	start := r.now()
	n, err := rewriteSecrets(ctx, r.Client)
	if err != nil {
		return fmt.Errorf("%w; the old key stays until every Secret is rewritten: run rotate-keys again", err)
	}
	active, old := m.keys()[0].Name, m.keys()[1].Name
	fmt.Fprintf(r.Out, "step 3/4: rewrote %d Secrets with key %s (%s)\n", n, active, since(r.now, start))
	start = r.now()
	if _, err = r.write(ctx, m); err != nil {
		return err
	}
	fmt.Fprintf(r.Out, "step 4/4: removed key %s (%s)\n", old, since(r.now, start))
	fmt.Fprintf(r.Out, "keys rotated: Secrets are encrypted with %s\n", active)
	return nil
}

// write moves m to its next stage: the file first, atomically, then the
// wait for the apiservers.
func (r *Rotator) write(ctx context.Context, m *managed) (*managed, error) {
	next, err := m.advance(r.random, r.now())
	if err != nil {
		return nil, err
	}
	data, err := next.marshal()
	if err != nil {
		return nil, err
	}
	if err := fileutil.WriteAtomic(r.Path, data, 0o600); err != nil {
		return nil, err
	}
	if err := r.Apiservers.WaitLoaded(ctx, contentHash(data)); err != nil {
		if next.stage == StageIdle {
			return nil, fmt.Errorf("%w; %s no longer has the old key, every Secret is rewritten, and the apiserver loads the file by itself", err, r.Path)
		}
		return nil, fmt.Errorf("%w; %s is written, key rotation %s: run rotate-keys again to go on", err, r.Path, next.stage)
	}
	return next, nil
}

func since(now func() time.Time, start time.Time) time.Duration {
	return now().Sub(start).Round(100 * time.Millisecond)
}

// lockDir keeps a second rotate-keys on this server out while one runs.
func lockDir(dir string) (func(), error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, errors.New("another `kubling secrets-encrypt rotate-keys` is running on this server")
		}
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	return func() { f.Close() }, nil
}

// rewriteSecrets writes every Secret back unchanged, page by page, so the
// apiserver stores it with the key that encrypts now: a stored value read
// with any other key (or identity) is "stale", and the apiserver writes it
// even though nothing changed. A Secret that changes or goes meanwhile is
// fine: whoever wrote it wrote it with the new key.
func rewriteSecrets(ctx context.Context, c kubernetes.Interface) (int, error) {
	seen := map[types.UID]bool{}
	opts := metav1.ListOptions{Limit: 100}
	for {
		list, err := c.CoreV1().Secrets("").List(ctx, opts)
		if apierrors.IsResourceExpired(err) && opts.Continue != "" {
			opts.Continue = "" // the page token outlived a compaction: again from the start (a second rewrite is harmless)
			continue
		}
		if err != nil {
			return len(seen), fmt.Errorf("list Secrets: %w", err)
		}
		for i := range list.Items {
			s := &list.Items[i]
			rewritten, err := rewriteSecret(ctx, c, s)
			if err != nil {
				return len(seen), err
			}
			if rewritten {
				seen[s.UID] = true
			}
		}
		if list.Continue == "" {
			return len(seen), nil
		}
		opts.Continue = list.Continue
	}
}

// rewriteSecret writes s back; false: it was deleted meanwhile.
func rewriteSecret(ctx context.Context, c kubernetes.Interface, s *corev1.Secret) (bool, error) {
	secrets := c.CoreV1().Secrets(s.Namespace)
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		_, err := secrets.Update(ctx, s, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) {
			fresh, gerr := secrets.Get(ctx, s.Name, metav1.GetOptions{})
			if gerr != nil {
				return gerr
			}
			s = fresh
		}
		return err
	})
	if apierrors.IsNotFound(err) {
		return false, nil // deleted meanwhile: nothing left to re-encrypt
	}
	if err != nil {
		return false, fmt.Errorf("rewrite Secret %s/%s: %w", s.Namespace, s.Name, err)
	}
	return true, nil
}

// reloadTimeout bounds each wait for the apiserver to load a new file: a few
// of its polls (ReloadInterval; upstream's default is a minute).
const reloadTimeout = 3 * time.Minute

// Metrics the apiserver's reload controller keeps (k8s.io/apiserver
// pkg/server/options/encryptionconfig/metrics): the hash of the file
// content in force, recorded at start and after each reload, and the
// reloads that failed.
const (
	metricLoadedConfig = "apiserver_encryption_config_controller_last_config_info"
	metricReloadsTotal = "apiserver_encryption_config_controller_automatic_reloads_total"
)

// localApiserver is this server's apiserver, asked through its /metrics.
type localApiserver struct {
	client            rest.Interface
	host              string
	timeout, interval time.Duration
}

type reloadMetrics struct {
	loaded   []string // content hashes in force
	failures float64  // failed reloads so far
}

func (a *localApiserver) scrape(ctx context.Context) (reloadMetrics, error) {
	raw, err := a.client.Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return reloadMetrics{}, err
	}
	return parseReloadMetrics(string(raw)), nil
}

// parseReloadMetrics reads the two metrics from Prometheus text.
func parseReloadMetrics(text string) reloadMetrics {
	var m reloadMetrics
	for _, line := range strings.Split(text, "\n") {
		name, rest, ok := strings.Cut(line, "{")
		if !ok || (name != metricLoadedConfig && name != metricReloadsTotal) {
			continue
		}
		labelText, value, ok := strings.Cut(rest, "}")
		if !ok {
			continue
		}
		labels := map[string]string{}
		for _, l := range strings.Split(labelText, ",") {
			if k, v, ok := strings.Cut(l, "="); ok {
				labels[strings.TrimSpace(k)] = strings.Trim(strings.TrimSpace(v), `"`)
			}
		}
		switch name {
		case metricLoadedConfig:
			m.loaded = append(m.loaded, labels["hash"])
		case metricReloadsTotal:
			if labels["status"] == "failure" {
				f, _ := strconv.ParseFloat(strings.TrimSpace(value), 64)
				m.failures += f
			}
		}
	}
	return m
}

func (a *localApiserver) Reachable(ctx context.Context) error {
	m, err := a.scrape(ctx)
	if err != nil {
		return fmt.Errorf("the server is not running or not reachable at %s: %v", a.host, err)
	}
	if len(m.loaded) == 0 {
		return fmt.Errorf("the apiserver at %s reports no encryption configuration (is it started with another --encryption-provider-config?)", a.host)
	}
	return nil
}

func (a *localApiserver) WaitLoaded(ctx context.Context, hash string) error {
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	baseFailures := -1.0
	var last error
	for {
		m, err := a.scrape(ctx)
		if err == nil {
			for _, h := range m.loaded {
				if h == hash {
					return nil
				}
			}
			// A file it cannot load, the apiserver tries again at each of
			// its polls: failures go on counting from where they were.
			if baseFailures < 0 {
				baseFailures = m.failures
			} else if m.failures > baseFailures {
				return fmt.Errorf("the apiserver at %s failed to load the encryption configuration (its log says why)", a.host)
			}
		} else if ctx.Err() == nil {
			last = err // a restarting server: ask again
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				if last != nil {
					return fmt.Errorf("the apiserver at %s has not loaded the encryption configuration within %s: %v", a.host, a.timeout, last)
				}
				return fmt.Errorf("the apiserver at %s has not loaded the encryption configuration within %s (is it started with another --encryption-provider-config?)", a.host, a.timeout)
			}
			return errors.New("interrupted")
		case <-time.After(a.interval):
		}
	}
}
