// Package pki creates the cluster's certificate authorities and certificates
// on first start and re-uses them afterwards, renewing only what is missing,
// expiring, wrongly signed or lacking a wanted name.
package pki

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"

	certutil "k8s.io/client-go/util/cert"
	"k8s.io/client-go/util/keyutil"

	"github.com/kubling/kubling/pkg/fileutil"
	"github.com/kubling/kubling/pkg/join"
)

// Certificate lifetimes. A leaf is renewed (at start, and while running:
// Ensure and EnsureNode are called again) when less than RenewBefore of it
// is left; CAs are never replaced automatically.
const (
	LeafValidity = 365 * 24 * time.Hour
	RenewBefore  = join.RenewBefore
)

// File names under the TLS directory.
const (
	ServerCA          = "server-ca"         // signs the apiserver's serving certificate; what clients trust
	KubeletCA         = "kubelet-ca"        // signs kubelets' serving certificates; only the apiserver trusts it
	ClientCA          = "client-ca"         // signs client certificates
	RequestHeaderCA   = "request-header-ca" // signs the aggregation front proxy's client cert
	ServiceAccountKey = "service.key"       // signs service account tokens
	APIServerServing  = "serving-kube-apiserver"
	AdminClient       = "client-admin"
	ControllerClient  = "client-controller-manager"
	SchedulerClient   = "client-scheduler"
	APIServerKubelet  = "client-kube-apiserver" // the apiserver's client cert towards kubelets
	AuthProxyClient   = "client-auth-proxy"

	// Embedded etcd's own authority and certificates (Options.Etcd): etcd
	// trusts only EtcdCA, on its client and its peer listeners alike.
	EtcdCA     = "etcd-ca"
	EtcdServer = "serving-etcd" // etcd's client listener
	EtcdPeer   = "peer-etcd"    // etcd's peer listener, and its client side towards other members
	EtcdClient = "client-etcd"  // the apiserver's and kubling's client cert towards etcd
)

// NetworkPolicyUser is the user name of every node's NetworkPolicy
// controller (rbac.yaml binds its reads to it).
const NetworkPolicyUser = "kubling:network-policy"

// CAs are the certificate authorities Ensure creates; EtcdCA too with
// Options.Etcd.
var CAs = []string{ServerCA, ClientCA, RequestHeaderCA, KubeletCA}

// Authorities are the certificate authorities a PKI made with o holds.
func (o Options) Authorities() []string {
	if o.Etcd {
		return append(slices.Clone(CAs), EtcdCA)
	}
	return CAs
}

// SANs are the names a serving certificate must carry.
type SANs struct {
	DNSNames []string
	IPs      []net.IP
}

// Options tell Ensure where the PKI lives and what the apiserver is called.
type Options struct {
	Dir          string
	APIServerSAN SANs
	// Etcd adds embedded etcd's authority and certificates, named like the
	// apiserver (APIServerSAN holds the host's addresses and names).
	Etcd bool
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// PKI locates the files of a PKI directory.
type PKI struct{ Dir string }

// Cert is the path of a certificate by its base name.
func (p PKI) Cert(name string) string { return filepath.Join(p.Dir, name+".crt") }

// Key is the path of a private key by its base name.
func (p PKI) Key(name string) string { return filepath.Join(p.Dir, name+".key") }

// ServiceAccountKeyFile is the path of the service account signing key.
func (p PKI) ServiceAccountKeyFile() string { return filepath.Join(p.Dir, ServiceAccountKey) }

var (
	serverAuth = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	clientAuth = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
)

type leaf struct {
	name  string
	ca    string
	cn    string
	orgs  []string
	usage []x509.ExtKeyUsage
	sans  SANs
}

// Ensure creates what is missing and renews what must be, and returns the
// base names of the certificates it wrote. It is called at every start and
// then periodically while running; a renewed leaf keeps its key (writeLeaf).
func Ensure(o Options) (PKI, []string, error) {
	p := PKI{Dir: o.Dir}
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return p, nil, fmt.Errorf("create %s: %w", o.Dir, err)
	}
	var written []string
	cas := map[string]*authority{}
	for _, name := range o.Authorities() {
		ca, created, err := p.ensureCA(name, now())
		if err != nil {
			return p, written, err
		}
		if created {
			written = append(written, name)
		}
		cas[name] = ca
	}
	if _, err := os.Stat(p.ServiceAccountKeyFile()); errors.Is(err, os.ErrNotExist) {
		keyPEM, err := keyutil.MakeEllipticPrivateKeyPEM()
		if err != nil {
			return p, written, fmt.Errorf("generate service account key: %w", err)
		}
		if err := fileutil.WriteAtomic(p.ServiceAccountKeyFile(), keyPEM, 0o600); err != nil {
			return p, written, err
		}
		written = append(written, ServiceAccountKey)
	} else if err != nil {
		return p, written, err
	} else if _, err := keyutil.PrivateKeyFromFile(p.ServiceAccountKeyFile()); err != nil {
		return p, written, fmt.Errorf("service account key %s: %w", p.ServiceAccountKeyFile(), err)
	}

	leaves := []leaf{
		{name: APIServerServing, ca: ServerCA, cn: "kube-apiserver", usage: serverAuth, sans: o.APIServerSAN},
		{name: AdminClient, ca: ClientCA, cn: "system:admin", orgs: []string{"system:masters"}, usage: clientAuth},
		{name: ControllerClient, ca: ClientCA, cn: "system:kube-controller-manager", usage: clientAuth},
		{name: SchedulerClient, ca: ClientCA, cn: "system:kube-scheduler", usage: clientAuth},
		{name: APIServerKubelet, ca: ClientCA, cn: "system:kube-apiserver", orgs: []string{"system:masters"}, usage: clientAuth},
		{name: AuthProxyClient, ca: RequestHeaderCA, cn: "system:auth-proxy", usage: clientAuth},
	}
	if o.Etcd {
		// etcd's peers dial each other with their peer certificate, so it
		// serves and authenticates both ways.
		both := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
		leaves = append(leaves,
			leaf{name: EtcdServer, ca: EtcdCA, cn: "etcd-server", usage: both, sans: o.APIServerSAN},
			leaf{name: EtcdPeer, ca: EtcdCA, cn: "etcd-peer", usage: both, sans: o.APIServerSAN},
			leaf{name: EtcdClient, ca: EtcdCA, cn: "etcd-client", usage: clientAuth},
		)
	}
	for _, l := range leaves {
		if p.leafValid(l, cas[l.ca], now()) {
			continue
		}
		if err := p.writeLeaf(l, cas[l.ca], now()); err != nil {
			return p, written, err
		}
		written = append(written, l.name)
	}
	return p, written, nil
}

type authority struct {
	cert *x509.Certificate
	key  crypto.Signer
}

func (p PKI) ensureCA(name string, now time.Time) (*authority, bool, error) {
	certPEM, certErr := os.ReadFile(p.Cert(name))
	keyPEM, keyErr := os.ReadFile(p.Key(name))
	switch {
	case certErr == nil && keyErr == nil:
		ca, err := parsePair(certPEM, keyPEM)
		if err != nil {
			return nil, false, fmt.Errorf("certificate authority %s: %w", p.Cert(name), err)
		}
		return ca, false, nil
	case certErr == nil && errors.Is(keyErr, os.ErrNotExist):
		// A CA certificate without its key cannot sign; replacing it would
		// silently invalidate every credential issued so far.
		return nil, false, fmt.Errorf("certificate authority %s exists but its key %s is missing", p.Cert(name), p.Key(name))
	case certErr != nil && !errors.Is(certErr, os.ErrNotExist):
		return nil, false, certErr
	case keyErr != nil && !errors.Is(keyErr, os.ErrNotExist):
		return nil, false, keyErr
	}
	keyPEM, err := keyutil.MakeEllipticPrivateKeyPEM()
	if err != nil {
		return nil, false, fmt.Errorf("generate %s key: %w", name, err)
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, false, err
	}
	cert, err := certutil.NewSelfSignedCACert(certutil.Config{CommonName: fmt.Sprintf("kubling-%s@%d", name, now.Unix())}, key)
	if err != nil {
		return nil, false, fmt.Errorf("create %s: %w", name, err)
	}
	// Key first: a crash between the two writes leaves a key without a
	// certificate, which the next start overwrites, never the reverse.
	if err := fileutil.WriteAtomic(p.Key(name), keyPEM, 0o600); err != nil {
		return nil, false, err
	}
	certPEM, err = certutil.EncodeCertificates(cert)
	if err != nil {
		return nil, false, err
	}
	if err := fileutil.WriteAtomic(p.Cert(name), certPEM, 0o644); err != nil {
		return nil, false, err
	}
	return &authority{cert: cert, key: key}, true, nil
}

func (p PKI) leafValid(l leaf, ca *authority, now time.Time) bool {
	certPEM, err := os.ReadFile(p.Cert(l.name))
	if err != nil {
		return false
	}
	keyPEM, err := os.ReadFile(p.Key(l.name))
	if err != nil {
		return false
	}
	pair, err := parsePair(certPEM, keyPEM)
	if err != nil {
		return false
	}
	c := pair.cert
	if c.CheckSignatureFrom(ca.cert) != nil || now.Add(RenewBefore).After(c.NotAfter) {
		return false
	}
	if c.Subject.CommonName != l.cn || !slices.Equal(c.Subject.Organization, l.orgs) {
		return false
	}
	for _, d := range l.sans.DNSNames {
		if !slices.Contains(c.DNSNames, d) {
			return false
		}
	}
	for _, ip := range l.sans.IPs {
		if !slices.ContainsFunc(c.IPAddresses, ip.Equal) {
			return false
		}
	}
	return true
}

// writeLeaf issues l. A readable key is kept and only the certificate is
// rewritten (as kubeadm's `certs renew` does): running components reload
// the cert and key files separately, and a new key would leave a moment
// when the two do not match. A missing or unreadable key is replaced;
// `kubling certificate rotate` (RemoveLeaves) is how keys are changed.
func (p PKI) writeLeaf(l leaf, ca *authority, now time.Time) error {
	key, err := keyutil.PrivateKeyFromFile(p.Key(l.name))
	signer, isSigner := key.(crypto.Signer)
	if err == nil && isSigner {
		chain, err := sign(l, ca, signer.Public(), now)
		if err != nil {
			return err
		}
		return fileutil.WriteAtomic(p.Cert(l.name), chain, 0o644)
	}
	keyPEM, err := keyutil.MakeEllipticPrivateKeyPEM()
	if err != nil {
		return fmt.Errorf("generate %s key: %w", l.name, err)
	}
	newKey, err := parseKey(keyPEM)
	if err != nil {
		return err
	}
	chain, err := sign(l, ca, newKey.Public(), now)
	if err != nil {
		return err
	}
	if err := fileutil.WriteAtomic(p.Key(l.name), keyPEM, 0o600); err != nil {
		return err
	}
	return fileutil.WriteAtomic(p.Cert(l.name), chain, 0o644)
}

// sign issues l for pub and returns the PEM chain (leaf, CA), which lets
// clients that only trust the CA verify it.
func sign(l leaf, ca *authority, pub crypto.PublicKey, now time.Time) ([]byte, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).SetInt64(math.MaxInt64))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: l.cn, Organization: l.orgs},
		NotBefore:    now.Add(-5 * time.Minute).UTC(),
		NotAfter:     now.Add(LeafValidity).UTC(),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  l.usage,
		DNSNames:     l.sans.DNSNames,
		IPAddresses:  l.sans.IPs,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		return nil, fmt.Errorf("sign %s: %w", l.name, err)
	}
	return certutil.EncodeCertificates(&x509.Certificate{Raw: der}, ca.cert)
}

func parseKey(keyPEM []byte) (crypto.Signer, error) {
	k, err := keyutil.ParsePrivateKeyPEM(keyPEM)
	if err != nil {
		return nil, err
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("private key of type %T cannot sign", k)
	}
	return s, nil
}

func parsePair(certPEM, keyPEM []byte) (*authority, error) {
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		return nil, err
	}
	certs, err := certutil.ParseCertsPEM(certPEM)
	if err != nil {
		return nil, err
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, err
	}
	return &authority{cert: certs[0], key: key}, nil
}

// CABundle returns the server CA certificate as it is served to joining
// agents; join tokens pin its sha256.
func (p PKI) CABundle() ([]byte, error) {
	b, err := os.ReadFile(p.Cert(ServerCA))
	if err != nil {
		return nil, err
	}
	return bytes.TrimSpace(b), nil
}

// nodeLeaf describes one node certificate: the kubelet client certificate
// (CN system:node:<name>, O system:nodes, from the client CA: the Node
// authorizer recognises it), the kubelet serving certificate (from the
// kubelet CA, which only the apiserver trusts, naming the node, localhost and
// its IPs, so no serving CSR is ever left Pending), and kube-proxy's client
// certificate, and the NetworkPolicy controller's (one identity for all
// nodes, as kube-proxy's: RBAC grants it reads only).
func nodeLeaf(cred, nodeName string, ips []net.IP) (leaf, string, error) {
	switch cred {
	case join.KubeletClient, join.RetiredFlannel:
		return leaf{name: cred, cn: "system:node:" + nodeName, orgs: []string{"system:nodes"}, usage: clientAuth}, ClientCA, nil
	case join.KubeletServing:
		sans := SANs{DNSNames: []string{nodeName, "localhost"}, IPs: append([]net.IP{net.ParseIP("127.0.0.1")}, ips...)}
		// Not the server CA: a node names itself in its serving certificate,
		// and what it names must never pass for the apiserver.
		return leaf{name: cred, cn: nodeName, usage: serverAuth, sans: sans}, KubeletCA, nil
	case join.KubeProxy:
		return leaf{name: cred, cn: "system:kube-proxy", usage: clientAuth}, ClientCA, nil
	case join.NetworkPolicy:
		return leaf{name: cred, cn: NetworkPolicyUser, usage: clientAuth}, ClientCA, nil
	}
	return leaf{}, "", fmt.Errorf("unknown node credential %q", cred)
}

// EnsureNode makes sure dir holds the node certificates of nodeName (the
// join protocol's credentials, join.Credentials), signed here for the
// server's own node, and the CAs a node trusts: the same files a joining
// agent receives. It returns the names of the certificates it issued.
func (p PKI) EnsureNode(dir, nodeName string, ips []net.IP, now func() time.Time) ([]string, error) {
	if now == nil {
		now = time.Now
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	out := PKI{Dir: dir}
	var written []string
	for _, cred := range join.Credentials {
		l, caName, err := nodeLeaf(cred, nodeName, ips)
		if err != nil {
			return written, err
		}
		ca, _, err := p.ensureCA(caName, now())
		if err != nil {
			return written, err
		}
		if out.leafValid(l, ca, now()) {
			continue
		}
		if err := out.writeLeaf(l, ca, now()); err != nil {
			return written, err
		}
		written = append(written, l.name)
	}
	for _, ca := range []string{ServerCA, ClientCA} {
		if err := copyFile(p.Cert(ca), out.Cert(ca)); err != nil {
			return written, err
		}
	}
	return written, nil
}

// copyFile writes src's content to dst unless dst already holds it.
func copyFile(src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if have, err := os.ReadFile(dst); err == nil && bytes.Equal(have, data) {
		return nil
	}
	return fileutil.WriteAtomic(dst, data, 0o644)
}

// ErrAuthority marks a signing failure on the server's side (its CA), not
// the request's.
var ErrAuthority = errors.New("certificate authority")

// SignNode issues a joining node's certificate cred for the public key of
// csrPEM. The server decides the subject and names; of the request it uses
// only the key, after checking the request's signature proves possession.
func (p PKI) SignNode(cred, nodeName string, ips []net.IP, csrPEM []byte, now time.Time) ([]byte, error) {
	l, caName, err := nodeLeaf(cred, nodeName, ips)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(csrPEM)
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return nil, fmt.Errorf("%s: not a PEM certificate request", cred)
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cred, err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("%s: certificate request signature: %w", cred, err)
	}
	certPEM, certErr := os.ReadFile(p.Cert(caName))
	keyPEM, keyErr := os.ReadFile(p.Key(caName))
	if err := errors.Join(certErr, keyErr); err != nil {
		return nil, fmt.Errorf("%w %s: %w", ErrAuthority, caName, err)
	}
	ca, err := parsePair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%w %s: %w", ErrAuthority, caName, err)
	}
	return sign(l, ca, csr.PublicKey, now)
}
