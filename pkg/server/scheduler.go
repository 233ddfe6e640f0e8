package server

import (
	"context"

	"k8s.io/client-go/tools/cache"
	schedulerapp "k8s.io/kubernetes/cmd/kube-scheduler/app"
	scheduleroptions "k8s.io/kubernetes/cmd/kube-scheduler/app/options"

	"github.com/kubling/kubling/pkg/component"
	"github.com/kubling/kubling/pkg/server/args"
)

// newScheduler runs kube-scheduler as its command does (options → Setup → Run).
func newScheduler(flags []string) *component.InProcess {
	return component.NewInProcess("scheduler",
		func(ctx context.Context) (func(context.Context) error, error) {
			opts := scheduleroptions.NewOptions()
			if err := component.ParseFlags("kube-scheduler", opts.Flags.FlagSets, flags); err != nil {
				return nil, err
			}
			if err := opts.ComponentGlobalsRegistry.Set(); err != nil {
				return nil, err
			}
			name, err := cache.NewInformerName("kube-scheduler")
			if err != nil {
				return nil, err
			}
			opts.InformerName = name
			cc, sched, err := schedulerapp.Setup(ctx, opts)
			if err != nil {
				return nil, err
			}
			return func(ctx context.Context) error { return schedulerapp.Run(ctx, cc, sched) }, nil
		},
		component.LoopbackHealth(args.SchedulerPort),
	)
}

// checkSchedulerFlags parses args into fresh options (see checkAPIServerFlags).
func checkSchedulerFlags(args []string) error {
	return component.ParseFlags("kube-scheduler", scheduleroptions.NewOptions().Flags.FlagSets, args)
}
