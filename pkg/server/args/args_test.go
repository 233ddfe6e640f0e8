package args

import (
	"slices"
	"strings"
	"testing"

	"github.com/kubling/kubling/pkg/server/pki"
)

func cp() ControlPlane {
	return ControlPlane{
		AuthenticationConfig: "/var/lib/kubling/server/etc/authentication.yaml",
		PKI:                  pki.PKI{Dir: "/var/lib/kubling/server/tls"},
		EtcdServers:          []string{"unix:///var/lib/kubling/server/kine.sock"},
		HTTPSPort:            6443,
		ClusterCIDR:          "10.42.0.0/16",
		ServiceCIDR:          "10.43.0.0/16",
		ClusterDomain:        "cluster.local",
		NodeCIDRMaskSize:     24,
		SchedulerKubeconfig:  "/s.kubeconfig",
		ControllerKubeconfig: "/c.kubeconfig",
	}
}

func TestAPIServerArgs(t *testing.T) {
	c := cp()
	c.ExtraAPIServer = []string{"audit-log-maxage=3", "profiling=true"}
	got, err := APIServer(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"--etcd-servers=unix:///var/lib/kubling/server/kine.sock",
		"--service-cluster-ip-range=10.43.0.0/16",
		"--secure-port=6443",
		"--client-ca-file=/var/lib/kubling/server/tls/client-ca.crt",
		"--tls-cert-file=/var/lib/kubling/server/tls/serving-kube-apiserver.crt",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--enable-bootstrap-token-auth=true",
		"--audit-log-maxage=3",
		"--profiling=true",
		"--authentication-config=/var/lib/kubling/server/etc/authentication.yaml",
	} {
		if !slices.Contains(got, want) {
			t.Errorf("missing %s in %v", want, got)
		}
	}
	for _, a := range got {
		if strings.HasPrefix(a, "--etcd-cafile") || strings.HasPrefix(a, "--bind-address") {
			t.Errorf("empty value passed: %s", a)
		}
	}
}

func TestAPIServerAuditLog(t *testing.T) {
	c := cp()
	off, err := APIServer(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range off {
		if strings.HasPrefix(a, "--audit-") {
			t.Errorf("audit flag without a policy: %s", a)
		}
	}
	c.AuditPolicy, c.AuditLog = "/d/server/etc/audit-policy.yaml", "/d/server/logs/audit.log"
	c.ExtraAPIServer = []string{"audit-log-maxbackup=2"}
	on, err := APIServer(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"--audit-policy-file=/d/server/etc/audit-policy.yaml", "--audit-log-path=/d/server/logs/audit.log", "--audit-log-maxsize=50", "--audit-log-maxbackup=2"} {
		if !slices.Contains(on, want) {
			t.Errorf("missing %s in %v", want, on)
		}
	}
	policy := string(AuditPolicy())
	if !strings.HasSuffix(policy, "- level: Metadata\n") || strings.Contains(policy, "Request") && strings.Contains(policy, "level: Request") {
		t.Errorf("the default policy must end at Metadata and never log bodies:\n%s", policy)
	}
}

func TestControllerManagerArgs(t *testing.T) {
	got, err := ControllerManager(cp())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"--allocate-node-cidrs=true",
		"--cluster-cidr=10.42.0.0/16",
		"--node-cidr-mask-size-ipv4=24",
		"--controllers=*,tokencleaner,bootstrapsigner",
		"--kube-api-qps=100",
		"--kube-api-burst=200",
		"--kubeconfig=/c.kubeconfig",
		"--cluster-signing-kubelet-serving-cert-file=/var/lib/kubling/server/tls/kubelet-ca.crt",
		"--cluster-signing-kubelet-client-cert-file=/var/lib/kubling/server/tls/client-ca.crt",
	} {
		if !slices.Contains(got, want) {
			t.Errorf("missing %s", want)
		}
	}
}

func TestSchedulerArgs(t *testing.T) {
	got, err := Scheduler(cp())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(got, "--kubeconfig=/s.kubeconfig") || !slices.Contains(got, "--bind-address=127.0.0.1") {
		t.Fatalf("%v", got)
	}
}

// TestAPIServerSecurityDefaults pins the apiserver's hardening: Node and
// RBAC authorisation, NodeRestriction, no profiling, kubelets' serving
// certificates verified, anonymous requests only through the
// authentication configuration (which allows just /cacerts).
func TestAPIServerSecurityDefaults(t *testing.T) {
	got, err := APIServer(cp())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"--authorization-mode=Node,RBAC",
		"--enable-admission-plugins=NodeRestriction",
		"--profiling=false",
		"--kubelet-certificate-authority=/var/lib/kubling/server/tls/kubelet-ca.crt",
		"--authentication-config=/var/lib/kubling/server/etc/authentication.yaml",
	} {
		if !slices.Contains(got, want) {
			t.Errorf("missing %s in %v", want, got)
		}
	}
	for _, a := range got {
		// anonymous-auth cannot be combined with an authentication
		// configuration that sets anonymous; insecure ports are gone upstream.
		if strings.HasPrefix(a, "--anonymous-auth") || strings.HasPrefix(a, "--insecure") || strings.HasPrefix(a, "--token-auth-file") {
			t.Errorf("unexpected %s", a)
		}
	}
	authn := string(AuthenticationConfig("/cacerts"))
	if !strings.Contains(authn, "enabled: true") || strings.Count(authn, "- path:") != 1 || !strings.Contains(authn, "- path: /cacerts") {
		t.Errorf("anonymous requests must be allowed on /cacerts only:\n%s", authn)
	}
}
