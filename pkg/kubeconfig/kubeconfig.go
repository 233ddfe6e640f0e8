// Package kubeconfig writes kubeconfig files for kubling's clients: the admin
// kubeconfig users get, and the control-plane components' own.
package kubeconfig

import (
	"fmt"
	"os"
	"path/filepath"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/kubling/kubling/pkg/fileutil"
)

// Spec describes one kubeconfig: where the server is, which CA to trust and
// which client certificate to present.
type Spec struct {
	Server   string
	CAFile   string
	CertFile string
	KeyFile  string
	// Embed copies the certificates into the file, for a kubeconfig that is
	// read by users or copied elsewhere; otherwise it references the files.
	Embed bool
}

// Write renders spec and writes it atomically with mode.
func Write(path string, spec Spec, mode os.FileMode) error {
	cluster := &clientcmdapi.Cluster{Server: spec.Server}
	user := &clientcmdapi.AuthInfo{}
	if spec.Embed {
		var err error
		if cluster.CertificateAuthorityData, err = os.ReadFile(spec.CAFile); err != nil {
			return err
		}
		if user.ClientCertificateData, err = os.ReadFile(spec.CertFile); err != nil {
			return err
		}
		if user.ClientKeyData, err = os.ReadFile(spec.KeyFile); err != nil {
			return err
		}
	} else {
		cluster.CertificateAuthority = spec.CAFile
		user.ClientCertificate = spec.CertFile
		user.ClientKey = spec.KeyFile
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["default"] = cluster
	cfg.AuthInfos["default"] = user
	cfg.Contexts["default"] = &clientcmdapi.Context{Cluster: "default", AuthInfo: "default"}
	cfg.CurrentContext = "default"
	data, err := clientcmd.Write(*cfg)
	if err != nil {
		return fmt.Errorf("render kubeconfig %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	return fileutil.WriteAtomic(path, data, mode)
}

// NewClient returns a Kubernetes client that acts as the kubeconfig at path.
func NewClient(path string) (kubernetes.Interface, error) {
	rest, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", path, err)
	}
	return kubernetes.NewForConfig(rest)
}
