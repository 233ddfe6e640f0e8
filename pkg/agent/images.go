package agent

import (
	"context"
	"fmt"
	"path/filepath"

	"k8s.io/klog/v2"

	"github.com/kubling/kubling/pkg/agent/containerd"
	"github.com/kubling/kubling/pkg/component"
)

// imports loads the images kubling ships (pause, CoreDNS; pinned, so the
// kubelet's image GC keeps them) and the airgap archives into containerd
// before the kubelet starts.
type imports struct {
	socket, snapshotter string
	bundled, archives   []string
	log                 klog.Logger
}

var _ component.Component = (*imports)(nil)

// newImports lists the airgap archives now, so a broken folder stops the
// node before anything starts.
func newImports(ctr containerd.Config, payloadDir, airgapDir string, log klog.Logger) (*imports, error) {
	archives, err := containerd.AirgapArchives(airgapDir)
	if err != nil {
		return nil, err
	}
	bundled, err := filepath.Glob(filepath.Join(payloadDir, "images", "*.tar"))
	if err != nil || len(bundled) == 0 {
		return nil, fmt.Errorf("no images in the payload at %s", filepath.Join(payloadDir, "images"))
	}
	return &imports{socket: ctr.Socket(), snapshotter: ctr.Snapshotter, bundled: bundled, archives: archives, log: log}, nil
}

func (i *imports) Name() string { return "images" }

func (i *imports) Start(ctx context.Context) error {
	if err := containerd.ImportArchives(ctx, i.socket, i.snapshotter, i.bundled, true, i.log); err != nil {
		return err
	}
	return containerd.ImportArchives(ctx, i.socket, i.snapshotter, i.archives, false, i.log)
}

func (i *imports) Ready(context.Context) error { return nil }
func (i *imports) Stop() error                 { return nil }
