package agent

import (
	"context"
	"crypto/rand"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/apimachinery/pkg/util/wait"
	certutil "k8s.io/client-go/util/cert"
	"k8s.io/client-go/util/keyutil"
	"k8s.io/klog/v2"
	"k8s.io/kubernetes/pkg/util/taints"

	"github.com/kubling/kubling/pkg/agent/containerd"
	"github.com/kubling/kubling/pkg/agent/loadbalancer"
	"github.com/kubling/kubling/pkg/component"
	"github.com/kubling/kubling/pkg/config"
	"github.com/kubling/kubling/pkg/fileutil"
	"github.com/kubling/kubling/pkg/hostcheck"
	"github.com/kubling/kubling/pkg/join"
	"github.com/kubling/kubling/pkg/server/kubeconfig"
	"github.com/kubling/kubling/pkg/server/token"
)

// LoadBalancerPort is where the agent's components reach the apiservers.
const LoadBalancerPort = 6444

// readyTimeout bounds how long one node component may take to become ready.
const readyTimeout = 2 * time.Minute

// Files of a joined node, under <data-dir>/agent.
func tlsDir(dataDir string) string       { return filepath.Join(agentDir(dataDir), "tls") }
func clusterFile(dataDir string) string  { return filepath.Join(agentDir(dataDir), "cluster.json") }
func serverCAFile(dataDir string) string { return filepath.Join(tlsDir(dataDir), "server-ca.crt") }
func clientCAFile(dataDir string) string { return filepath.Join(tlsDir(dataDir), "client-ca.crt") }
func certFile(dataDir, cred string) string {
	return filepath.Join(tlsDir(dataDir), cred+".crt")
}
func keyFile(dataDir, cred string) string { return filepath.Join(tlsDir(dataDir), cred+".key") }

// Run joins this machine to the cluster at c.Server and runs its node until
// ctx ends or a component fails; then it stops everything in reverse order.
func Run(ctx context.Context, c *config.Agent, log klog.Logger) (err error) {
	begin := time.Now()

	// 1. Check the flags and the host; nothing is written before this passes.
	server, err := join.ServerURL(c.Server)
	if err != nil {
		return err
	}
	tok, err := token.Parse(c.Token)
	if err != nil {
		return fmt.Errorf("--token: %w", err)
	}
	if err := hostcheck.Root("agent"); err != nil {
		return err
	}
	if err := hostcheck.BrNetfilter(); err != nil {
		return err
	}
	lbAddress := net.JoinHostPort("127.0.0.1", strconv.Itoa(LoadBalancerPort))
	ports := append(Ports(), hostcheck.Port{Host: "127.0.0.1", Port: LoadBalancerPort, What: "the agent's apiserver load balancer"})
	if err := hostcheck.PortsFree(ports); err != nil {
		return err
	}
	if err := hostcheck.Writable(c.DataDir); err != nil {
		return fmt.Errorf("data dir %s is not writable: %w", c.DataDir, err)
	}
	if err := checkSameCluster(c.DataDir, tok); err != nil {
		return err
	}
	if err := CheckDefaultRuntime(c.DefaultRuntime); err != nil {
		return err
	}
	registries, err := containerd.LoadRegistries(c.PrivateRegistry)
	if err != nil {
		return err
	}
	add, _, err := taints.ParseTaints(c.NodeTaints)
	if err != nil {
		return fmt.Errorf("--node-taint: %w", err)
	}
	nodeIP := c.NodeIP
	if nodeIP == "" {
		ip, err := utilnet.ChooseHostInterface()
		if err != nil {
			return fmt.Errorf("detect the node IP (set --node-ip): %w", err)
		}
		nodeIP = ip.String()
	}
	lock, err := hostcheck.LockDir(c.DataDir)
	if err != nil {
		return err
	}
	defer lock.Close()

	// 2. Join: the CA (checked against the token), then certificates for
	// this node's own keys. While the server cannot be reached, retry; a
	// node that joined before starts with what it has.
	phase := time.Now()
	password, err := NodePassword(c.DataDir)
	if err != nil {
		return err
	}
	cluster, err := joinCluster(ctx, server, tok, join.Request{NodeName: c.NodeName, NodePassword: password, Addresses: []string{nodeIP}}, c.DataDir, log)
	if err != nil {
		return err
	}
	log.Info("Joined", "server", server.String(), "node", c.NodeName, "duration", time.Since(phase).Round(time.Millisecond))

	// 3. The node's components reach the apiservers through the local load
	// balancer, over every server the cluster lists.
	lb := loadbalancer.New(lbAddress, append([]string{server.Host}, hostPorts(cluster.Servers)...), log)
	local := "https://" + lbAddress
	kubeconfigs := map[string]string{
		join.KubeletClient: filepath.Join(agentDir(c.DataDir), "kubelet.kubeconfig"),
		join.KubeProxy:     filepath.Join(agentDir(c.DataDir), "kube-proxy.kubeconfig"),
		join.Flannel:       filepath.Join(agentDir(c.DataDir), "flannel.kubeconfig"),
	}
	for cred, path := range kubeconfigs {
		spec := kubeconfig.Spec{Server: local, CAFile: serverCAFile(c.DataDir), CertFile: certFile(c.DataDir, cred), KeyFile: keyFile(c.DataDir, cred)}
		if err := kubeconfig.Write(path, spec, 0o600); err != nil {
			return err
		}
	}
	parts, err := Components(Config{
		DataDir:             c.DataDir,
		NodeName:            c.NodeName,
		NodeIP:              nodeIP,
		Labels:              ParseLabels(c.NodeLabels),
		Taints:              add,
		ClusterCIDR:         cluster.ClusterCIDR,
		ClusterDNS:          cluster.ClusterDNS,
		ClusterDomain:       cluster.ClusterDomain,
		KubeletKubeconfig:   kubeconfigs[join.KubeletClient],
		KubeProxyKubeconfig: kubeconfigs[join.KubeProxy],
		FlannelKubeconfig:   kubeconfigs[join.Flannel],
		FlannelBackend:      cluster.FlannelBackend,
		ClientCAFile:        clientCAFile(c.DataDir),
		ServingCert:         certFile(c.DataDir, join.KubeletServing),
		ServingKey:          keyFile(c.DataDir, join.KubeletServing),
		KubeletArgs:         c.KubeletArgs,
		KubeProxyArgs:       c.KubeProxyArgs,
		DefaultRuntime:      c.DefaultRuntime,
		Registries:          registries,
	}, log)
	if err != nil {
		return err
	}
	runner := component.NewRunner(log)
	defer func() {
		if stopErr := runner.Stop(); stopErr != nil {
			err = errors.Join(err, stopErr)
		}
	}()
	if err := runner.Start(ctx, readyTimeout, append([]component.Component{lb}, parts...)...); err != nil {
		return err
	}
	log.Info("kubling agent is ready", "node", c.NodeName, "server", server.String(), "duration", time.Since(begin).Round(time.Millisecond))
	// Tell systemd (Type=notify), when it started us.
	_, _ = daemon.SdNotify(false, daemon.SdNotifyReady)

	select {
	case <-ctx.Done():
		log.Info("Stopping")
		return nil
	case err := <-component.FirstExit(parts):
		return err
	}
}

// ParseLabels turns validated key=value flags into a map.
func ParseLabels(list []string) map[string]string {
	labels := map[string]string{}
	for _, l := range list {
		k, v, _ := strings.Cut(l, "=")
		labels[k] = v
	}
	return labels
}

// NodePassword returns this machine's node password, made on first use. The
// server ties the node name to it, so another machine cannot take the name.
func NodePassword(dataDir string) (string, error) {
	path := filepath.Join(agentDir(dataDir), "node-password")
	if data, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(data))) >= 16 {
		return strings.TrimSpace(string(data)), nil
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read node password: %w", err)
	}
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	password := hex.EncodeToString(b)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", err
	}
	return password, fileutil.WriteAtomic(path, []byte(password+"\n"), 0o600)
}

// checkSameCluster refuses a data dir that joined another cluster: its CA
// differs from the one the token pins.
func checkSameCluster(dataDir string, t token.Token) error {
	ca, err := os.ReadFile(serverCAFile(dataDir))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	if token.CAHash([]byte(strings.TrimSpace(string(ca)))) != t.CAHash {
		return fmt.Errorf("data dir %s belongs to another cluster (its CA is not the one the token pins): use that cluster's token, or remove %s to join this one", dataDir, agentDir(dataDir))
	}
	return nil
}

// joinCluster joins (retrying with back-off while the server is away) and
// writes the node's certificates and the cluster's settings. A node that
// joined before goes on with its stored credentials when the server cannot
// be reached; a refusal (wrong token, wrong CA, clock skew, name taken) ends
// the agent.
func joinCluster(ctx context.Context, server *url.URL, t token.Token, req join.Request, dataDir string, log klog.Logger) (*join.Cluster, error) {
	csrs, err := certificateRequests(dataDir, req.NodeName)
	if err != nil {
		return nil, err
	}
	req.CSRs = csrs
	stored, storedErr := storedCluster(dataDir)
	id, secret := t.Bootstrap()
	var resp *join.Response
	attempt, refusals := 0, 0
	backoff := wait.Backoff{Duration: time.Second, Factor: 2, Jitter: 0.1, Steps: math.MaxInt32, Cap: 30 * time.Second}
	err = wait.ExponentialBackoffWithContext(ctx, backoff, func(ctx context.Context) (bool, error) {
		attempt++
		ca, err := join.FetchCA(ctx, server, t, nil)
		if err == nil {
			resp, err = join.Post(ctx, server, ca, id+"."+secret, req)
			if err == nil {
				return true, writeCredentials(dataDir, ca, resp)
			}
		}
		if join.IsAuthRefusal(err) && storedErr == nil {
			// A token may expire (`kubling token create` makes 24-hour ones)
			// long after its node joined; the node's own certificates go on.
			log.Info("The server refused the token; starting with the credentials of the last join", "server", server.String(), "err", err.Error())
			return true, nil
		}
		if join.IsAuthRefusal(err) && refusals < 3 {
			refusals++ // the server may have started a moment ago
			log.Info("The server refused the token; trying again in case it is still starting", "err", err.Error())
			return false, nil
		}
		if join.IsPermanent(err) {
			return false, err
		}
		if storedErr == nil {
			log.Info("Cannot reach the server; starting with the credentials of the last join", "server", server.String(), "err", err.Error())
			return true, nil
		}
		log.Info("Cannot join yet; retrying", "attempt", attempt, "err", err.Error())
		return false, nil
	})
	if err != nil {
		return nil, err
	}
	if resp == nil {
		return stored, nil
	}
	return &resp.Cluster, nil
}

// certificateRequests makes (once) a private key per node credential and
// returns a certificate request for each; the keys stay on this machine.
func certificateRequests(dataDir, nodeName string) (map[string][]byte, error) {
	if err := os.MkdirAll(tlsDir(dataDir), 0o700); err != nil {
		return nil, err
	}
	csrs := map[string][]byte{}
	for _, cred := range join.Credentials {
		path := keyFile(dataDir, cred)
		key, err := keyutil.PrivateKeyFromFile(path)
		if errors.Is(err, os.ErrNotExist) {
			keyPEM, genErr := keyutil.MakeEllipticPrivateKeyPEM()
			if genErr != nil {
				return nil, genErr
			}
			if err := fileutil.WriteAtomic(path, keyPEM, 0o600); err != nil {
				return nil, err
			}
			key, err = keyutil.ParsePrivateKeyPEM(keyPEM)
		}
		if err != nil {
			return nil, fmt.Errorf("node key %s: %w", path, err)
		}
		csr, err := certutil.MakeCSR(key, &pkix.Name{CommonName: nodeName}, nil, nil)
		if err != nil {
			return nil, fmt.Errorf("certificate request %s: %w", cred, err)
		}
		csrs[cred] = csr
	}
	return csrs, nil
}

// writeCredentials stores what the server sent: the CAs, a certificate per
// credential, and the cluster's settings (last, so a complete cluster.json
// means a complete join).
func writeCredentials(dataDir string, serverCA []byte, resp *join.Response) error {
	files := map[string][]byte{
		serverCAFile(dataDir): append(serverCA, '\n'),
		clientCAFile(dataDir): resp.ClientCA,
	}
	for _, cred := range join.Credentials {
		files[certFile(dataDir, cred)] = resp.Certificates[cred]
	}
	for path, data := range files {
		if err := fileutil.WriteAtomic(path, data, 0o644); err != nil {
			return err
		}
	}
	data, err := json.MarshalIndent(resp.Cluster, "", "  ")
	if err != nil {
		return err
	}
	return fileutil.WriteAtomic(clusterFile(dataDir), append(data, '\n'), 0o600)
}

// storedCluster returns the settings of the last join, if it completed.
func storedCluster(dataDir string) (*join.Cluster, error) {
	data, err := os.ReadFile(clusterFile(dataDir))
	if err != nil {
		return nil, err
	}
	c := &join.Cluster{}
	if err := json.Unmarshal(data, c); err != nil {
		return nil, fmt.Errorf("%s: %w", clusterFile(dataDir), err)
	}
	for _, cred := range join.Credentials {
		if _, err := os.Stat(certFile(dataDir, cred)); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// hostPorts turns server URLs into host:port for the load balancer.
func hostPorts(servers []string) []string {
	var out []string
	for _, s := range servers {
		if u, err := join.ServerURL(s); err == nil {
			out = append(out, u.Host)
		}
	}
	return out
}
