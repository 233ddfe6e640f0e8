package agent

import (
	"context"
	"fmt"
	"time"

	cadvisorcontainerd "github.com/google/cadvisor/lib/container/containerd"
	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	"k8s.io/client-go/kubernetes"
	cliflag "k8s.io/component-base/cli/flag"
	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"
	kubeletapp "k8s.io/kubernetes/cmd/kubelet/app"
	kubeletoptions "k8s.io/kubernetes/cmd/kubelet/app/options"
	kubeletconfig "k8s.io/kubernetes/pkg/kubelet/apis/config"
	kubeletscheme "k8s.io/kubernetes/pkg/kubelet/apis/config/scheme"
	kubeletconfigv1beta1 "k8s.io/kubernetes/pkg/kubelet/apis/config/v1beta1"
	kubeletvalidation "k8s.io/kubernetes/pkg/kubelet/apis/config/validation"
	"k8s.io/utils/ptr"

	"github.com/kubling/kubling/pkg/component"
	"github.com/kubling/kubling/pkg/componentargs"
	"github.com/kubling/kubling/pkg/kubeconfig"
)

// kubeletSettings are kubling's choices for the kubelet on this node.
type kubeletSettings struct {
	NodeName, NodeIP    string
	Kubeconfig          string
	RootDir, CertDir    string
	ClientCAFile        string
	TLSCertFile, TLSKey string
	ContainerdSocket    string
	CgroupDriver        string
	ClusterDNS          string
	ClusterDomain       string
	ResolvConf          string
	Labels              map[string]string
	Taints              []corev1.Taint
	// ExternalCloudProvider leaves the Node's addresses, once set, to the
	// server (--node-external-ip: pkg/server/nodeaddress); the kubelet
	// would otherwise rewrite them without the ExternalIP.
	ExternalCloudProvider bool
	ExtraArgs             []string
}

// kubeletHealthPort is the kubelet's plain-HTTP health endpoint on loopback.
const kubeletHealthPort = 10248

// kubeletConfiguration builds the KubeletConfiguration from the v1beta1
// defaults (not the legacy command-line defaults, which allow anonymous
// access) and applies --kubelet-arg overrides.
func kubeletConfiguration(s kubeletSettings) (*kubeletoptions.KubeletFlags, *kubeletconfig.KubeletConfiguration, error) {
	v := &kubeletv1beta1.KubeletConfiguration{
		Authentication: kubeletv1beta1.KubeletAuthentication{
			X509:      kubeletv1beta1.KubeletX509Authentication{ClientCAFile: s.ClientCAFile},
			Webhook:   kubeletv1beta1.KubeletWebhookAuthentication{Enabled: ptr.To(true)},
			Anonymous: kubeletv1beta1.KubeletAnonymousAuthentication{Enabled: ptr.To(false)},
		},
		Authorization:            kubeletv1beta1.KubeletAuthorization{Mode: kubeletv1beta1.KubeletAuthorizationModeWebhook},
		ClusterDNS:               []string{s.ClusterDNS},
		ClusterDomain:            s.ClusterDomain,
		CgroupDriver:             s.CgroupDriver,
		ContainerRuntimeEndpoint: "unix://" + s.ContainerdSocket,
		// Kubernetes 1.37 refuses cgroup v1 unless told otherwise; these
		// machines (and many edge devices) are v1.
		FailCgroupV1:       ptr.To(false),
		FailSwapOn:         ptr.To(false),
		TLSCertFile:        s.TLSCertFile,
		TLSPrivateKeyFile:  s.TLSKey,
		ReadOnlyPort:       0,
		HealthzBindAddress: "127.0.0.1",
		HealthzPort:        ptr.To[int32](kubeletHealthPort),
		ResolverConfig:     ptr.To(s.ResolvConf),
		// Small disks: evict late rather than never (the unexported file
		// loader's defaults do not apply to a configuration built in Go).
		EvictionHard: map[string]string{
			"memory.available":  "100Mi",
			"nodefs.available":  "5%",
			"nodefs.inodesFree": "5%",
			"imagefs.available": "5%",
		},
		SerializeImagePulls: ptr.To(false),
		RegisterWithTaints:  s.Taints,
	}
	kubeletconfigv1beta1.SetDefaults_KubeletConfiguration(v)
	scheme, _, err := kubeletscheme.NewSchemeAndCodecs()
	if err != nil {
		return nil, nil, err
	}
	kc := &kubeletconfig.KubeletConfiguration{}
	if err := scheme.Convert(v, kc, nil); err != nil {
		return nil, nil, err
	}
	kf := kubeletoptions.NewKubeletFlags()
	kf.KubeConfig = s.Kubeconfig
	kf.HostnameOverride = s.NodeName
	kf.NodeIP = s.NodeIP
	kf.RootDirectory = s.RootDir
	kf.CertDirectory = s.CertDir
	kf.NodeLabels = s.Labels
	if s.ExternalCloudProvider {
		kf.CloudProvider = "external"
	}

	fs := pflag.NewFlagSet("kubelet", pflag.ContinueOnError)
	fs.SetNormalizeFunc(cliflag.WordSepNormalizeFunc)
	kf.AddFlags(fs)
	kubeletoptions.AddKubeletConfigFlags(fs, kc)
	var extra []string
	for _, o := range s.ExtraArgs {
		k, v, err := componentargs.ParseOverride(o)
		if err != nil {
			return nil, nil, err
		}
		extra = append(extra, "--"+k+"="+v)
	}
	if err := fs.Parse(extra); err != nil {
		return nil, nil, fmt.Errorf("--kubelet-arg: %w", err)
	}
	if err := kubeletoptions.ValidateKubeletFlags(kf); err != nil {
		return nil, nil, err
	}
	return kf, kc, nil
}

// newKubelet runs the kubelet in-process. The kubelet cannot be stopped
// cleanly (several of its loops run until the process exits), so Stop only
// cancels it; kubling exits right after.
func newKubelet(s kubeletSettings) *component.InProcess {
	return component.NewInProcess("kubelet",
		func(ctx context.Context) (func(context.Context) error, error) {
			kf, kc, err := kubeletConfiguration(s)
			if err != nil {
				return nil, err
			}
			if err := utilfeature.DefaultMutableFeatureGate.SetFromMap(kc.FeatureGates); err != nil {
				return nil, err
			}
			if err := kubeletvalidation.ValidateKubeletConfiguration(kc, utilfeature.DefaultFeatureGate); err != nil {
				return nil, err
			}
			// cAdvisor finds containers through containerd's socket, set by
			// a process-global flag in cadvisor (the kubelet no longer has --containerd).
			*cadvisorcontainerd.ArgContainerdEndpoint = s.ContainerdSocket
			server := &kubeletoptions.KubeletServer{KubeletFlags: *kf, KubeletConfiguration: *kc}
			deps, err := kubeletapp.UnsecuredDependencies(ctx, server, utilfeature.DefaultFeatureGate)
			if err != nil {
				return nil, err
			}
			return func(ctx context.Context) error {
				return kubeletapp.Run(ctx, server, deps, utilfeature.DefaultFeatureGate)
			}, nil
		},
		kubeletReady(s),
	).StopGrace(5 * time.Second)
}

// kubeletReady is the kubelet's readiness: healthy, and its Node registered.
// kube-proxy, next, looks for its Node once a second: started before the
// Node exists, it waits a second more (measured: kube-proxy ready 1.4 s
// after the kubelet, against 0.4 s).
func kubeletReady(s kubeletSettings) component.ProbeFunc {
	healthy := component.HTTPProbe(fmt.Sprintf("http://127.0.0.1:%d/healthz", kubeletHealthPort), nil)
	var client kubernetes.Interface
	return func(ctx context.Context) error {
		if err := healthy(ctx); err != nil {
			return err
		}
		if client == nil {
			c, err := kubeconfig.NewClient(s.Kubeconfig)
			if err != nil {
				return err
			}
			client = c
		}
		if _, err := client.CoreV1().Nodes().Get(ctx, s.NodeName, metav1.GetOptions{}); err != nil {
			return fmt.Errorf("node %s not registered yet: %w", s.NodeName, err)
		}
		return nil
	}
}
