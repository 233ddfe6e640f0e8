package server

import (
	"context"

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
		component.LoopbackHealth(args.ControllerManagerPort),
	)
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
