// Package netpol enforces NetworkPolicy on a node: kube-router's
// NetworkPolicy controller (its netpol package alone: no BGP, no service
// proxy), in kubling's process, as K3s runs it. It keeps iptables filter
// chains and ipsets for the pods of this node, from the cluster's pods,
// namespaces and policies; iptables and ipset come from the host or the
// payload (pkg/agent/iptables). Host-network pods are not touched.
package netpol

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudnativelabs/kube-router/v2/pkg/controllers/netpol"
	"github.com/cloudnativelabs/kube-router/v2/pkg/healthcheck"
	"github.com/cloudnativelabs/kube-router/v2/pkg/options"
	"github.com/cloudnativelabs/kube-router/v2/pkg/utils"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"

	"github.com/kubling/kubling/pkg/component"
)

// Name is the component's name.
const Name = "network-policy"

// Config places the controller on its node.
type Config struct {
	NodeName string
	// ServiceCIDR is the cluster's Service range: traffic to ClusterIPs is
	// left to kube-proxy's rules, and policed after translation.
	ServiceCIDR netip.Prefix
	// NodePortRange is the apiserver's, first-last.
	NodePortFirst, NodePortLast int
	// Kubeconfig holds the node's network-policy credential (reads pods,
	// namespaces, policies and nodes).
	Kubeconfig string
	// SyncPeriod is how often every rule is rewritten even without a change
	// (changes are applied when they are seen).
	SyncPeriod time.Duration
}

// krConfig is kube-router's configuration for the policy controller alone.
func krConfig(c Config) (*options.KubeRouterConfig, error) {
	if !c.ServiceCIDR.Addr().Is4() {
		return nil, fmt.Errorf("NetworkPolicy: service CIDR %s: only IPv4 clusters are supported", c.ServiceCIDR)
	}
	if c.NodePortFirst <= 0 || c.NodePortLast < c.NodePortFirst || c.NodePortLast > 65535 {
		return nil, fmt.Errorf("NetworkPolicy: node port range %d-%d", c.NodePortFirst, c.NodePortLast)
	}
	kc := options.NewKubeRouterConfig()
	kc.RunFirewall, kc.RunRouter, kc.RunServiceProxy, kc.RunLoadBalancer = true, false, false, false
	kc.EnableIPv4, kc.EnableIPv6 = true, false
	kc.ClusterIPCIDRs = []string{c.ServiceCIDR.String()}
	kc.NodePortRange = fmt.Sprintf("%d:%d", c.NodePortFirst, c.NodePortLast)
	kc.HostnameOverride = c.NodeName
	kc.IPTablesSyncPeriod = c.SyncPeriod
	kc.MetricsEnabled = false
	kc.HealthPort = 0
	return kc, nil
}

// New returns the controller as a component, ready once its first sync of
// the node's rules has begun (it holds the rules' lock until done).
func New(c Config, log klog.Logger) *component.InProcess {
	var synced atomic.Bool
	return component.NewInProcess(Name,
		func(ctx context.Context) (func(context.Context) error, error) {
			run, err := prepare(ctx, c, &synced, log)
			if err != nil {
				return nil, fmt.Errorf("NetworkPolicy: %w", err)
			}
			return run, nil
		},
		func(context.Context) error {
			if !synced.Load() {
				return errors.New("first sync not started")
			}
			return nil
		},
	)
}

// prepare checks ipset and iptables (kube-router exits the process when
// they fail later), waits for the node's Node, starts the informers and
// makes the controller.
func prepare(ctx context.Context, c Config, synced *atomic.Bool, log klog.Logger) (func(context.Context) error, error) {
	kc, err := krConfig(c)
	if err != nil {
		return nil, err
	}
	probe, err := utils.NewIPSet(false)
	if err != nil {
		return nil, fmt.Errorf("ipset: %w", err)
	}
	if err := probe.Save(); err != nil {
		return nil, fmt.Errorf("ipset save (the kernel needs ip_set, hash:ip and hash:net): %w", err)
	}
	iptablesHandlers, ipsetHandlers, err := netpol.NewIPTablesHandlers(kc)
	if err != nil {
		return nil, err
	}
	rest, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	if err != nil {
		return nil, err
	}
	client, err := kubernetes.NewForConfig(rest)
	if err != nil {
		return nil, err
	}
	// kube-router reads the node's address from its Node, which the
	// kubelet registers moments after it starts. Bounded: ctx lasts until
	// the component stops.
	waitCtx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	if err := waitForNode(waitCtx, client, c.NodeName); err != nil {
		return nil, err
	}
	factory := informers.NewSharedInformerFactory(client, 0)
	pods := factory.Core().V1().Pods().Informer()
	if err := pods.SetTransform(trimPod); err != nil {
		return nil, err
	}
	namespaces := factory.Core().V1().Namespaces().Informer()
	policies := factory.Networking().V1().NetworkPolicies().Informer()
	factory.Start(ctx.Done())
	for typ, ok := range factory.WaitForCacheSync(waitCtx.Done()) {
		if !ok {
			// The informers stop with ctx, which Start cancels on error.
			return nil, fmt.Errorf("list %v: %w", typ, context.Cause(waitCtx))
		}
	}
	npc, err := netpol.NewNetworkPolicyController(client, kc, pods, policies, namespaces, &sync.Mutex{}, iptablesHandlers, ipsetHandlers)
	if err != nil {
		return nil, err
	}
	for _, h := range []struct {
		informer cache.SharedIndexInformer
		handler  cache.ResourceEventHandler
	}{{pods, npc.PodEventHandler}, {namespaces, npc.NamespaceEventHandler}, {policies, npc.NetworkPolicyEventHandler}} {
		if _, err := h.informer.AddEventHandler(h.handler); err != nil {
			return nil, err
		}
	}
	return func(ctx context.Context) error {
		// The controller sends a heartbeat at the start of each sync and
		// blocks until it is taken.
		health := make(chan *healthcheck.ControllerHeartbeat)
		var wg sync.WaitGroup
		wg.Add(1)
		go npc.Run(health, ctx.Done(), &wg)
		log.Info("NetworkPolicy controller started", "node", c.NodeName, "syncPeriod", c.SyncPeriod)
		for {
			select {
			case <-health:
				synced.Store(true)
			case <-ctx.Done():
				// Drain until its loops end, so none blocks on a heartbeat.
				done := make(chan struct{})
				go func() { wg.Wait(); close(done) }()
				for {
					select {
					case <-health:
					case <-done:
						factory.Shutdown()
						return ctx.Err()
					}
				}
			}
		}
	}, nil
}

// startTimeout bounds the wait for the node's Node and the first lists.
const startTimeout = 2 * time.Minute

// waitForNode waits until the node's Node exists.
func waitForNode(ctx context.Context, client kubernetes.Interface, name string) error {
	err := wait.PollUntilContextCancel(ctx, 200*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		_, err := client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		switch {
		case err == nil:
			return true, nil
		case apierrors.IsNotFound(err):
			return false, nil
		case apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err):
			return false, fmt.Errorf("read node %s: %w", name, err)
		}
		return false, nil // the apiserver may be starting
	})
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("node %s not registered after %s: %w", name, startTimeout, err)
	}
	return err
}

// trimPod keeps what the controller reads of a pod (labels, addresses,
// phase, host network, container ports for named ports): every node
// watches every pod, and the rest (environment, volumes, managed fields)
// would only cost memory.
func trimPod(obj any) (any, error) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil // a tombstone
	}
	containers := make([]corev1.Container, len(pod.Spec.Containers))
	for i, ctr := range pod.Spec.Containers {
		containers[i] = corev1.Container{Name: ctr.Name, Ports: ctr.Ports}
	}
	return &corev1.Pod{
		TypeMeta: pod.TypeMeta,
		ObjectMeta: metav1.ObjectMeta{
			Name: pod.Name, Namespace: pod.Namespace, UID: pod.UID, ResourceVersion: pod.ResourceVersion,
			Labels: pod.Labels, DeletionTimestamp: pod.DeletionTimestamp,
		},
		Spec: corev1.PodSpec{NodeName: pod.Spec.NodeName, HostNetwork: pod.Spec.HostNetwork, Containers: containers},
		Status: corev1.PodStatus{
			Phase: pod.Status.Phase, PodIP: pod.Status.PodIP, PodIPs: pod.Status.PodIPs,
			HostIP: pod.Status.HostIP, HostIPs: pod.Status.HostIPs,
		},
	}, nil
}

// chainPrefixes name the filter chains the controller makes.
var chainPrefixes = []string{"KUBE-ROUTER-", "KUBE-NWPLCY-", "KUBE-POD-FW-"}

// ipsetCommand is found on PATH (the host's or the payload's, set by
// pkg/agent/iptables), as kube-router finds it.
const ipsetCommand = "ipset"

// setPrefixes name its ipsets.
var setPrefixes = []string{"KUBE-SRC-", "KUBE-DST-"}

// Remove deletes the chains, rules and ipsets an earlier run of the
// controller left, so a node restarted with NetworkPolicy off enforces
// none. Call it before kube-proxy starts: it rewrites the filter table.
// It reports whether there was anything to remove.
func Remove(log klog.Logger) (bool, error) {
	saved, err := exec.Command("iptables-save", "-t", "filter").Output()
	if err != nil {
		return false, fmt.Errorf("iptables-save: %w", err)
	}
	kept, removed := withoutChains(saved)
	if removed > 0 {
		restore := exec.Command("iptables-restore", "-w", "5")
		restore.Stdin = bytes.NewReader(kept)
		if out, err := restore.CombinedOutput(); err != nil {
			return false, fmt.Errorf("iptables-restore: %w: %s", err, bytes.TrimSpace(out))
		}
	}
	sets := 0
	if _, err := exec.LookPath(ipsetCommand); err == nil {
		list, err := exec.Command(ipsetCommand, "list", "-n").Output()
		if err != nil {
			return false, fmt.Errorf("ipset list: %w", err)
		}
		for _, name := range strings.Fields(string(list)) {
			if !hasPrefix(strings.TrimPrefix(name, "inet6:"), setPrefixes) {
				continue
			}
			if out, err := exec.Command(ipsetCommand, "destroy", name).CombinedOutput(); err != nil {
				return false, fmt.Errorf("ipset destroy %s: %w: %s", name, err, bytes.TrimSpace(out))
			}
			sets++
		}
	}
	if removed+sets > 0 {
		log.Info("NetworkPolicy is off: removed the rules an earlier run left", "rules", removed, "ipsets", sets)
	}
	return removed+sets > 0, nil
}

// withoutChains drops from an iptables-save of the filter table the
// controller's chains, their rules and every rule jumping to them; it
// returns how many lines went.
func withoutChains(saved []byte) ([]byte, int) {
	var kept bytes.Buffer
	removed := 0
	for _, line := range strings.SplitAfter(string(saved), "\n") {
		fields := strings.Fields(line)
		drop := false
		for i, f := range fields {
			if (i == 0 && strings.HasPrefix(f, ":") && hasPrefix(f[1:], chainPrefixes)) ||
				((f == "-A" || f == "-j" || f == "-g") && i+1 < len(fields) && hasPrefix(fields[i+1], chainPrefixes)) {
				drop = true
				break
			}
		}
		if drop {
			removed++
			continue
		}
		kept.WriteString(line)
	}
	return kept.Bytes(), removed
}

func hasPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}
