package server

import (
	"context"

	cmapp "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	cmoptions "k8s.io/kubernetes/cmd/kube-controller-manager/app/options"

	"github.com/kubling/kubling/pkg/server/args"
)

// newControllerManager runs kube-controller-manager as its command does
// (options → Config → Run).
func newControllerManager(flags []string) *inProcess {
	return &inProcess{
		name: "controller-manager",
		prepare: func(ctx context.Context) (func(context.Context) error, error) {
			s, err := cmoptions.NewKubeControllerManagerOptions()
			if err != nil {
				return nil, err
			}
			known, disabled, aliases := cmapp.KnownControllers(), cmapp.ControllersDisabledByDefault(), cmapp.ControllerAliases()
			sets := s.Flags(known, disabled, aliases)
			s.ParsedFlags = &sets
			if err := parseFlags("kube-controller-manager", sets.FlagSets, flags); err != nil {
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
		probe: loopbackHealth(args.ControllerManagerPort),
	}
}

// checkControllerManagerFlags parses args into fresh options (see checkAPIServerFlags).
func checkControllerManagerFlags(args []string) error {
	s, err := cmoptions.NewKubeControllerManagerOptions()
	if err != nil {
		return err
	}
	sets := s.Flags(cmapp.KnownControllers(), cmapp.ControllersDisabledByDefault(), cmapp.ControllerAliases())
	return parseFlags("kube-controller-manager", sets.FlagSets, args)
}
