package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/apiserver/pkg/server/flagz"
	"k8s.io/client-go/tools/cache"
	apiserverapp "k8s.io/kubernetes/cmd/kube-apiserver/app"
	apiserveroptions "k8s.io/kubernetes/cmd/kube-apiserver/app/options"

	"github.com/kubling/kubling/pkg/component"
	"github.com/kubling/kubling/pkg/join"
	"github.com/kubling/kubling/pkg/server/pki"
	"github.com/kubling/kubling/pkg/server/tunnel"
)

// newAPIServer runs kube-apiserver the way its own command does
// (options → Complete → NewConfig → CreateServerChain → PrepareRun → Run),
// with two additions: kubling's handlers on the non-REST mux, and the
// agents' tunnel endpoint (join.TunnelPath) in front of the handler chain —
// a websocket that lives as long as the agent, which the chain's request
// timeout would cut — authenticated by the apiserver's own authenticator.
func newAPIServer(args []string, host string, port int, p pki.PKI, handlers map[string]http.Handler, tunnels *tunnel.Server) *component.InProcess {
	return component.NewInProcess("apiserver",
		func(ctx context.Context) (func(context.Context) error, error) {
			s := apiserveroptions.NewServerRunOptions()
			sets := s.Flags()
			s.Flagz = flagz.NamedFlagSetsReader{FlagSets: sets}
			if err := component.ParseFlags("kube-apiserver", sets.FlagSets, args); err != nil {
				return nil, err
			}
			if err := s.GenericServerRunOptions.ComponentGlobalsRegistry.Set(); err != nil {
				return nil, err
			}
			completed, err := s.Complete(ctx)
			if err != nil {
				return nil, err
			}
			if errs := completed.Validate(); len(errs) != 0 {
				return nil, utilerrors.NewAggregate(errs)
			}
			if completed.InformerName == nil {
				if completed.InformerName, err = cache.NewInformerName("kube-apiserver"); err != nil {
					return nil, err
				}
			}
			config, err := apiserverapp.NewConfig(completed)
			if err != nil {
				return nil, err
			}
			cc, err := config.Complete()
			if err != nil {
				return nil, err
			}
			chain, err := apiserverapp.CreateServerChain(cc)
			if err != nil {
				return nil, err
			}
			for path, h := range handlers {
				chain.GenericAPIServer.Handler.NonGoRestfulMux.Handle(path, h)
			}
			chainHandler := chain.GenericAPIServer.Handler
			full, agentTunnels := chainHandler.FullHandlerChain, tunnels.Handler(config.Aggregator.GenericConfig.Authentication.Authenticator)
			chainHandler.FullHandlerChain = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == join.TunnelPath {
					agentTunnels.ServeHTTP(w, r)
					return
				}
				full.ServeHTTP(w, r)
			})
			prepared, err := chain.PrepareRun()
			if err != nil {
				return nil, err
			}
			return prepared.Run, nil
		},
		apiserverProbe(host, port, p),
		// The kubelet's status loops keep calling until the process exits, so
		// a drain with the node running would wait the full request timeout.
	).StopGrace(10 * time.Second)
}

// apiserverProbe asks /readyz as the admin: ready means every post-start
// hook (RBAC bootstrap, priority classes…) has finished.
func apiserverProbe(host string, port int, p pki.PKI) func(ctx context.Context) error {
	var probe func(ctx context.Context) error
	return func(ctx context.Context) error {
		if probe == nil {
			caPEM, err := os.ReadFile(p.Cert(pki.ServerCA))
			if err != nil {
				return err
			}
			pool := x509.NewCertPool()
			pool.AppendCertsFromPEM(caPEM)
			cert, err := tls.LoadX509KeyPair(p.Cert(pki.AdminClient), p.Key(pki.AdminClient))
			if err != nil {
				return err
			}
			probe = component.HTTPProbe(fmt.Sprintf("https://%s/readyz", net.JoinHostPort(host, strconv.Itoa(port))), &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}})
		}
		return probe(ctx)
	}
}

// checkAPIServerFlags parses args into fresh options, so an unknown or
// malformed flag is refused before anything is written.
func checkAPIServerFlags(args []string) error {
	return component.ParseFlags("kube-apiserver", apiserveroptions.NewServerRunOptions().Flags().FlagSets, args)
}
