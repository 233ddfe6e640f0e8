package agent

import (
	"context"
	"path/filepath"

	"k8s.io/klog/v2"

	"github.com/kubling/kubling/pkg/agent/containerd"
	"github.com/kubling/kubling/pkg/component"
)

// imports loads the pause image (pinned) and the airgap archives into
// containerd before the kubelet starts.
type imports struct {
	socket, snapshotter, pause string
	archives                   []string
	log                        klog.Logger
}

var _ component.Component = (*imports)(nil)

// newImports lists the airgap archives now, so a broken folder stops the
// node before anything starts.
func newImports(ctr containerd.Config, payloadDir, airgapDir string, log klog.Logger) (*imports, error) {
	archives, err := containerd.AirgapArchives(airgapDir)
	if err != nil {
		return nil, err
	}
	return &imports{socket: ctr.Socket(), snapshotter: ctr.Snapshotter, pause: filepath.Join(payloadDir, "images", "pause.tar"), archives: archives, log: log}, nil
}

func (i *imports) Name() string { return "images" }

func (i *imports) Start(ctx context.Context) error {
	if err := containerd.ImportArchives(ctx, i.socket, i.snapshotter, []string{i.pause}, true, i.log); err != nil {
		return err
	}
	return containerd.ImportArchives(ctx, i.socket, i.snapshotter, i.archives, false, i.log)
}

func (i *imports) Ready(context.Context) error { return nil }
func (i *imports) Stop() error                 { return nil }
