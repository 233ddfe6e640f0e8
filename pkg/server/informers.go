package server

import (
	"context"
	"errors"

	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"

	"github.com/kubling/kubling/pkg/component"
)

// clusterInformers is the informer factory the cluster controllers share,
// so that each kind (Nodes above all, which four of them watch) is listed,
// watched and cached once. It starts before them and stops after them
// (with leader election, it comes and goes with them); each controller
// registers its informers and handlers in its Start and starts them with
// the factory's Start, bound to its own context: they all stop together.
type clusterInformers struct {
	client  func() (kubernetes.Interface, error)
	factory informers.SharedInformerFactory
}

var _ component.Component = (*clusterInformers)(nil)

func (i *clusterInformers) Name() string { return "cluster-informers" }

func (i *clusterInformers) Start(context.Context) error {
	client, err := i.client()
	if err != nil {
		return err
	}
	i.factory = informers.NewSharedInformerFactory(client, 0)
	return nil
}

func (i *clusterInformers) Ready(context.Context) error { return nil }

// Stop waits for the informers, whose contexts the controllers (stopped
// before) have cancelled.
func (i *clusterInformers) Stop() error {
	i.factory.Shutdown()
	return nil
}

// Factory is the shared factory, once started.
func (i *clusterInformers) Factory() (informers.SharedInformerFactory, error) {
	if i.factory == nil {
		return nil, errors.New("the cluster informers are not started")
	}
	return i.factory, nil
}
