package encryption

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/retry"

	"github.com/kubling/kubling/pkg/fileutil"
)

// Apiservers are the cluster's apiservers, as a rotation waits for them: a
// key may only encrypt once all of them can decrypt with it, and the old key
// may only go once none of them encrypts with it. The file reaches the other
// servers through the datastore (the server seals it there, the others take
// it), so the wait is also for the sealed copy: a snapshot taken at any
// moment holds every key its Secrets need.
type Apiservers interface {
	// Reachable says why the apiservers cannot be asked, fast.
	Reachable(ctx context.Context) error
	// WaitLoaded returns once the datastore's sealed copy holds, and every
	// apiserver encrypts and decrypts with, the configuration whose content
	// hash is hash (see contentHash).
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
// cluster whose server kubeconfig (its admin kubeconfig) reaches; sealed is
// where that server records the configuration sealed in the datastore.
func RotateKeys(ctx context.Context, path, sealed, kubeconfig string, out io.Writer) error {
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
	servers := &clusterApiservers{client: client, config: cfg, timeout: reloadTimeout, interval: 2 * time.Second,
		sealed: func() (string, error) {
			data, err := os.ReadFile(sealed)
			if errors.Is(err, os.ErrNotExist) {
				return "", nil
			}
			return strings.TrimSpace(string(data)), err
		}}
	r := &Rotator{Path: path, Apiservers: servers, Client: client, Out: out}
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
		fmt.Fprintf(r.Out, "step 1/4: added key %s for decryption only; every server has loaded it (%s)\n", m.keys()[1].Name, since(r.now, start))
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

// apiserver is one apiserver, asked through its /metrics.
type apiserver struct {
	client rest.Interface
	host   string
}

// clusterApiservers are every apiserver of the cluster: the one the admin
// kubeconfig reaches, and those the default/kubernetes Service lists (each
// running apiserver keeps its address there), each reached with the same
// credentials; and the sealed copy in the datastore, as the local server
// records it.
type clusterApiservers struct {
	client kubernetes.Interface
	config *rest.Config           // nil: only the kubeconfig's apiserver (tests)
	local  *apiserver             // made from client when nil
	sealed func() (string, error) // nil: not waited for
	// others are the clients made so far, by URL.
	others            map[string]*apiserver
	timeout, interval time.Duration
	// pending names what the last poll still waited for.
	pending string
}

type reloadMetrics struct {
	loaded   []string // content hashes in force
	failures float64  // failed reloads so far
}

func (a *apiserver) scrape(ctx context.Context) (reloadMetrics, error) {
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

// list is every apiserver to ask now: the local one first, then one per
// address the kubernetes Service lists. Servers come and go during a
// rotation, so it is read again at each poll.
func (c *clusterApiservers) list(ctx context.Context) ([]*apiserver, error) {
	if c.local == nil {
		c.local = &apiserver{client: c.client.CoreV1().RESTClient(), host: c.config.Host}
	}
	out := []*apiserver{c.local}
	if c.config == nil {
		return out, nil
	}
	eps, err := c.client.DiscoveryV1().EndpointSlices(metav1.NamespaceDefault).List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=kubernetes"})
	if err != nil {
		return nil, fmt.Errorf("list the cluster's apiservers: %w", err)
	}
	if c.others == nil {
		c.others = map[string]*apiserver{}
	}
	for _, es := range eps.Items {
		port := 0
		for _, p := range es.Ports {
			if p.Port != nil && (p.Name == nil || *p.Name == "https") {
				port = int(*p.Port)
			}
		}
		if port == 0 {
			continue
		}
		for _, ep := range es.Endpoints {
			for _, addr := range ep.Addresses {
				host := "https://" + net.JoinHostPort(addr, strconv.Itoa(port))
				a, ok := c.others[host]
				if !ok {
					cfg := rest.CopyConfig(c.config)
					cfg.Host = host
					// Every server's certificate names the Service.
					cfg.TLSClientConfig.ServerName = "kubernetes"
					client, err := kubernetes.NewForConfig(cfg)
					if err != nil {
						return nil, err
					}
					a = &apiserver{client: client.CoreV1().RESTClient(), host: host}
					c.others[host] = a
				}
				out = append(out, a)
			}
		}
	}
	return out, nil
}

func (c *clusterApiservers) Reachable(ctx context.Context) error {
	servers, err := c.list(ctx)
	if err != nil {
		if c.local != nil {
			return fmt.Errorf("the server is not running or not reachable at %s: %v", c.local.host, err)
		}
		return err
	}
	for _, a := range servers {
		m, err := a.scrape(ctx)
		if err != nil && a == c.local {
			return fmt.Errorf("the server is not running or not reachable at %s: %v", a.host, err)
		}
		if err != nil {
			return fmt.Errorf("the apiserver at %s, one of the cluster's, is not reachable (%v): every server must be up to rotate keys", a.host, err)
		}
		if len(m.loaded) == 0 {
			return fmt.Errorf("the apiserver at %s reports no encryption configuration (is it started with another --encryption-provider-config?)", a.host)
		}
	}
	return nil
}

func (c *clusterApiservers) WaitLoaded(ctx context.Context, hash string) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	baseFailures := map[string]float64{}
	var last error
	for {
		done, err := c.loaded(ctx, hash, baseFailures)
		switch {
		case done:
			return nil
		case errors.Is(err, errReloadFailed):
			return err
		case err != nil && ctx.Err() == nil:
			last = err // a restarting server: ask again
		case err == nil:
			last = nil
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				if last != nil {
					return fmt.Errorf("the encryption configuration is not loaded everywhere within %s: %v", c.timeout, last)
				}
				return fmt.Errorf("%s has not taken the encryption configuration within %s (is it started with another --encryption-provider-config?)", c.pending, c.timeout)
			}
			return errors.New("interrupted")
		case <-time.After(c.interval):
		}
	}
}

var errReloadFailed = errors.New("failed to load the encryption configuration (its log says why)")

// loaded is one poll of WaitLoaded: true once the sealed copy and every
// apiserver have hash. It sets c.pending to what is still waited for.
func (c *clusterApiservers) loaded(ctx context.Context, hash string, baseFailures map[string]float64) (bool, error) {
	if c.sealed != nil {
		have, err := c.sealed()
		if err != nil {
			return false, err
		}
		if have != hash {
			c.pending = "the server (sealing it into the datastore)"
			return false, nil
		}
	}
	servers, err := c.list(ctx)
	if err != nil {
		return false, err
	}
	for _, a := range servers {
		m, err := a.scrape(ctx)
		if err != nil {
			return false, fmt.Errorf("%s: %w", a.host, err)
		}
		if slices.Contains(m.loaded, hash) {
			continue
		}
		// A file it cannot load, the apiserver tries again at each of its
		// polls: failures go on counting from where they were.
		if base, ok := baseFailures[a.host]; !ok {
			baseFailures[a.host] = m.failures
		} else if m.failures > base {
			return false, fmt.Errorf("the apiserver at %s %w", a.host, errReloadFailed)
		}
		c.pending = "the apiserver at " + a.host
		return false, nil
	}
	return true, nil
}
