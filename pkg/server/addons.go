package server

import (
	"context"
	"slices"

	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"

	"github.com/kubling/kubling/manifests"
	"github.com/kubling/kubling/pkg/config"
	"github.com/kubling/kubling/pkg/datadir"
	"github.com/kubling/kubling/pkg/server/addons"
	"github.com/kubling/kubling/pkg/server/apply"
	"github.com/kubling/kubling/pkg/server/localstorage"
)

// newManifestsController renders the bundled add-ons with this cluster's
// values and returns the controller that applies the manifests folder.
func newManifestsController(ctx context.Context, c *config.Server, l datadir.Layout, applier *apply.Applier, newClient func() (kubernetes.Interface, error), log klog.Logger) (*addons.Controller, error) {
	disabled := map[string]bool{}
	for _, name := range manifests.Names() {
		// A pod network add-on only where --cni chose it.
		disabled[name] = c.Disabled(name) || slices.Contains(config.CNIAddons(), name) && c.CNI != name
	}
	if c.NFSServer == "" {
		// Without an NFS server the driver would only idle on every node
		// (or sit in ImagePullBackOff where no registry is reachable).
		disabled["nfs-csi"] = true
	}
	cluster := c.Cluster()
	values := manifests.Values{
		ClusterDNS: cluster.ClusterDNS.String(), ClusterDomain: cluster.ClusterDomain, ClusterCIDR: cluster.ClusterCIDR.String(), ServiceCIDR: cluster.ServiceCIDR.String(),
		SystemDefaultRegistry: c.SystemDefaultRegistry, KubeletDir: l.KubeletDir(), CNIConfDir: l.CNIConfDir(), CNIPluginDir: l.CNIPluginDir(),
	}
	nfs, local := !disabled["nfs-csi"], !disabled[localstorage.Name]
	if nfs {
		values.NFS = manifests.NFS{Server: c.NFSServer, Share: c.NFSShare, MountOptions: c.NFSMountOptions, ReclaimPolicy: c.NFSReclaimPolicy}
	}
	if nfs || local {
		client, err := newClient()
		if err != nil {
			return nil, err
		}
		if values.NFS.Default, values.LocalPathDefault, err = defaultClasses(ctx, client, nfs, c.NFSDefaultClass, local, log); err != nil {
			return nil, err
		}
	}
	return addons.New(addons.Config{Dir: l.Manifests(), Kubeconfig: l.AdminKubeconfig(), Applier: applier, Values: values, Disabled: disabled, Log: log}), nil
}
