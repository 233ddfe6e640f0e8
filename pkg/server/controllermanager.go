package server

import (
	"context"
	"crypto/tls"
	"fmt"

	cmapp "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	cmoptions "k8s.io/kubernetes/cmd/kube-controller-manager/app/options"

	"github.com/kubling/kubling/pkg/component"
	"github.com/kubling/kubling/pkg/server/args"
)

// newControllerManager runs kube-controller-manager as its command does
// (options → Config → Run).
func newControllerManager(flags []string) *component.InProcess {
	return component.NewInProcess("controller-manager",
		func(ctx context.Context) (func(context.Context) error, error) {
			s, err := cmoptions.NewKubeControllerManagerOptions()
			if err != nil {
				return nil, err
			}
			known, disabled, aliases := cmapp.KnownControllers(), cmapp.ControllersDisabledByDefault(), cmapp.ControllerAliases()
			sets := s.Flags(known, disabled, aliases)
			s.ParsedFlags = &sets
			if err := component.ParseFlags("kube-controller-manager", sets.FlagSets, flags); err != nil {
				return nil, err
			}
			if err := s.ComponentGlobalsRegistry.Set(); err != nil {
				return nil, err
			}
			c, err := s.Config(ctx, known, disabled, aliases)
			if err != nil {
				return nil, err
			}
			completed := c.Complete()
			return func(ctx context.Context) error { return cmapp.Run(ctx, completed) }, nil
		},
		controllersBuilt(args.ControllerManagerPort),
	)
}

// controllersBuilt is ready once the controller-manager has built its
// controllers: it lists their health checks (all named "…-controller")
// only then. Until then it may still initialise its volume plugins, and
// the CSI plugin keeps its node state in a package variable that this
// process's kubelet shares: initialised after the kubelet's, it leaves
// the kubelet a node without a name ("failed to initialize CSINode …
// resource name may not be empty", and CSI drivers that never register).
// So the server's node starts only after this.
func controllersBuilt(port int) component.ProbeFunc {
	return component.HTTPProbeContains(fmt.Sprintf("https://127.0.0.1:%d/healthz?verbose", port),
		&tls.Config{InsecureSkipVerify: true}, "-controller ok") //nolint:gosec // loopback health, no secrets
}

// checkControllerManagerFlags parses args into fresh options (see checkAPIServerFlags).
func checkControllerManagerFlags(args []string) error {
	s, err := cmoptions.NewKubeControllerManagerOptions()
	if err != nil {
		return err
	}
	sets := s.Flags(cmapp.KnownControllers(), cmapp.ControllersDisabledByDefault(), cmapp.ControllerAliases())
	return component.ParseFlags("kube-controller-manager", sets.FlagSets, args)
}
