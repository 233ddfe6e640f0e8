package server

import (
	"context"
	"fmt"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"
	bootstraputil "k8s.io/cluster-bootstrap/token/util"
	"k8s.io/klog/v2"

	"github.com/kubling/kubling/pkg/token"
)

// DurableAgentTokenDescription marks the bootstrap token behind the
// cluster's agent token.
const DurableAgentTokenDescription = "kubling agent token (durable; from <data-dir>/server/agent-token)"

// agentTokens settles the cluster's agent token: the token agents join
// with, unrelated to the server token, so that an agent's disk yields its
// node's credentials and nothing that joins a server or opens the sealed
// keys. The cluster's copy (a bootstrap token in kube-system) is the one
// that counts; every server keeps it in its <data-dir>/server/agent-token.
type agentTokens struct {
	client kubernetes.Interface
	path   string
	caHash string
	// given is --agent-token; nil without.
	given *token.Token
	log   klog.Logger
}

// ensure makes the cluster's agent token the given one (--agent-token), or
// else adopts the cluster's, or else installs this server's file's or a new
// random one, and writes the file. Servers starting together on an empty
// cluster each create one; the newest stays (durableAgentTokens' order), the
// others are removed by whichever server sees them, and follow brings every
// server's file to the one that stayed.
func (a *agentTokens) ensure(ctx context.Context) error {
	current, err := durableAgentTokens(ctx, a.client)
	if err != nil {
		return err
	}
	stored, err := token.ReadFile(a.path)
	if err != nil {
		return err
	}
	var want token.Token
	switch {
	case a.given != nil:
		if a.given.CAHash != "" && a.given.CAHash != a.caHash {
			return fmt.Errorf("--agent-token pins a CA other than this cluster's; give a bare secret or this cluster's agent token")
		}
		// Kept in bootstrap form (id.secret), as the cluster holds it.
		id, secret := a.given.Bootstrap()
		want = token.Token{Secret: id + "." + secret}
		if len(current) > 0 && current[0].Secret != want.Secret {
			a.log.Info("--agent-token replaces the cluster's agent token: joined agents keep their credentials, new joins need the new token")
		}
	case len(current) > 0:
		want = current[0]
	case stored != nil:
		want = token.Token{Secret: stored.Secret} // the file holds the bootstrap form
	default:
		// A random bootstrap token: its id says nothing about its secret.
		if want.Secret, err = bootstraputil.GenerateBootstrapToken(); err != nil {
			return fmt.Errorf("agent token: %w", err)
		}
	}
	if len(current) == 0 || current[0].Secret != want.Secret {
		if err := applyDurableToken(ctx, a.client, want, DurableAgentTokenDescription); err != nil {
			return fmt.Errorf("agent token: %w", err)
		}
		if current, err = durableAgentTokens(ctx, a.client); err != nil {
			return err
		}
	}
	// One agent token per cluster: the given one, or the newest.
	keep := current[0]
	if a.given != nil {
		keep = want
	}
	for _, t := range current {
		if t.Secret == keep.Secret {
			continue
		}
		if err := deleteBootstrapToken(ctx, a.client, t); err != nil {
			return fmt.Errorf("remove the replaced agent token: %w", err)
		}
	}
	full := token.Token{CAHash: a.caHash, Secret: keep.Secret}
	if stored == nil || *stored != full {
		if err := token.WriteFile(a.path, full); err != nil {
			return fmt.Errorf("write the agent token: %w", err)
		}
	}
	return nil
}

// durableAgentTokens are the cluster's agent tokens (normally one), newest
// first (then by name), as bare secrets in bootstrap form (id.secret): a
// rotation's new token comes before the old one it is about to delete.
func durableAgentTokens(ctx context.Context, client kubernetes.Interface) ([]token.Token, error) {
	secrets, err := client.CoreV1().Secrets(metav1.NamespaceSystem).List(ctx, metav1.ListOptions{FieldSelector: "type=" + string(bootstrapapi.SecretTypeBootstrapToken)})
	if err != nil {
		return nil, fmt.Errorf("list the agent token: %w", err)
	}
	var found []corev1.Secret
	for _, s := range secrets.Items {
		if string(s.Data[bootstrapapi.BootstrapTokenDescriptionKey]) == DurableAgentTokenDescription {
			found = append(found, s)
		}
	}
	sort.Slice(found, func(i, j int) bool {
		ti, tj := found[i].CreationTimestamp, found[j].CreationTimestamp
		if !ti.Equal(&tj) {
			return tj.Before(&ti)
		}
		return found[i].Name < found[j].Name
	})
	out := make([]token.Token, 0, len(found))
	for _, s := range found {
		out = append(out, token.Token{Secret: string(s.Data[bootstrapapi.BootstrapTokenIDKey]) + "." + string(s.Data[bootstrapapi.BootstrapTokenSecretKey])})
	}
	return out, nil
}

// followInterval is how often a server compares its agent-token file with
// the cluster's agent token.
const followInterval = 30 * time.Second

// follow keeps the agent-token file equal to the cluster's agent token
// while the server runs: rotated on another server (`kubling token rotate
// --agent`), or settled after servers started together. Its first round is
// one interval after ensure, which has just done the same.
func (a *agentTokens) follow(ctx context.Context) {
	_ = wait.PollUntilContextCancel(ctx, followInterval, false, func(ctx context.Context) (bool, error) {
		if err := a.sync(ctx); err != nil {
			a.log.Error(err, "Update the agent token file", "file", a.path)
		}
		return false, nil
	})
}

// deleteBootstrapToken removes the bootstrap token behind t; one already
// gone is fine.
func deleteBootstrapToken(ctx context.Context, client kubernetes.Interface, t token.Token) error {
	id, _ := t.Bootstrap()
	err := client.CoreV1().Secrets(metav1.NamespaceSystem).Delete(ctx, bootstraputil.BootstrapTokenSecretName(id), metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete bootstrap token %s: %w", id, err)
	}
	return nil
}

// sync writes the cluster's agent token to the file if it differs; a
// cluster without one is left alone (the next start makes one).
func (a *agentTokens) sync(ctx context.Context) error {
	current, err := durableAgentTokens(ctx, a.client)
	if err != nil || len(current) == 0 {
		return err
	}
	full := token.Token{CAHash: a.caHash, Secret: current[0].Secret}
	if stored, err := token.ReadFile(a.path); err == nil && stored != nil && *stored == full {
		return nil
	}
	if err := token.WriteFile(a.path, full); err != nil {
		return err
	}
	a.log.Info("The cluster's agent token changed; the file now holds the new one", "file", a.path)
	return nil
}
