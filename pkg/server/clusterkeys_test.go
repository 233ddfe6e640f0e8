package server

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/klog/v2"

	"github.com/kubling/kubling/pkg/datadir"
	"github.com/kubling/kubling/pkg/datastore"
	"github.com/kubling/kubling/pkg/server/bootstrapdata"
	"github.com/kubling/kubling/pkg/server/encryption"
	"github.com/kubling/kubling/pkg/server/pki"
	"github.com/kubling/kubling/pkg/token"
)

// encryptionStage is an encryption configuration as a rotation writes it:
// secretbox with keys named by day (the first encrypts), then identity.
func encryptionStage(days ...int) []byte {
	var keys []string
	for _, d := range days {
		secret := base64.StdEncoding.EncodeToString([]byte(strings.Repeat(fmt.Sprint(d%10), 32)))
		keys = append(keys, fmt.Sprintf("{name: kubling-202601%02dT000000Z, secret: %s}", d, secret))
	}
	return []byte("apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n  - secretbox: {keys: [" +
		strings.Join(keys, ", ") + "]}\n  - identity: {}\n")
}

// keysServer is a server's data dir holding the cluster keys of the CA named
// ca, the encryption configuration enc and the token secret.
func keysServer(t *testing.T, ca string, enc []byte, secret string) datadir.Layout {
	t.Helper()
	l := datadir.New(t.TempDir())
	p := pki.PKI{Dir: l.ServerTLS()}
	files := bootstrapdata.Files{
		filepath.Base(p.Cert(pki.ServerCA)): []byte("certificate of " + ca),
		filepath.Base(p.Key(pki.ServerCA)):  []byte("key of " + ca),
		filepath.Base(l.EncryptionConfig()): enc,
	}
	if err := bootstrapdata.Write(l.ServerTLS(), files); err != nil {
		t.Fatal(err)
	}
	if err := token.WriteFile(l.Token(), token.Token{CAHash: testCAHash, Secret: secret}); err != nil {
		t.Fatal(err)
	}
	return l
}

func sealedRecord(t *testing.T, l datadir.Layout) string {
	t.Helper()
	data, err := os.ReadFile(l.SealedEncryption())
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(data))
}

// storedKeys opens what the datastore holds with secret.
func storedKeys(t *testing.T, kv *datastore.KV, secret string) (bootstrapdata.Files, int64, error) {
	t.Helper()
	blob, rev, err := kv.Get(context.Background(), bootstrapdata.Key)
	if err != nil || rev == 0 {
		t.Fatalf("stored keys: revision %d, %v", rev, err)
	}
	files, err := bootstrapdata.Open(blob, secret)
	return files, rev, err
}

// TestClusterKeysFollowRotations: the sealed copy in a real datastore
// (kine on SQLite) follows a rotate-keys step and a token rotation on one
// server within a round, over the revision it read; the other server takes
// the newer encryption configuration, at a round and at its start, and
// never puts an older one back; it takes the rotated token from the
// rotation record, and a server two rotations behind follows both at its
// start; another cluster's data dir is refused and left as it was.
func TestClusterKeysFollowRotations(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	store, err := datastore.New(datastore.Config{Layout: datadir.New(t.TempDir())})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer store.Stop()
	if err := store.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	b := store.Backend()
	kv, err := datastore.OpenKV(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	defer kv.Close()
	log := klog.Background()
	const secret = "the-first-token-secret-0123456789"
	stage0, stage1 := encryptionStage(1), encryptionStage(1, 2)
	encName := filepath.Base(datadir.New("/").EncryptionConfig())

	// The first server stores its keys; the second, of the same cluster,
	// finds them as they are and writes nothing.
	a := keysServer(t, "cluster", stage0, secret)
	ca, err := storeBootstrapData(ctx, b, a, log)
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Stop()
	_, rev0, err := storedKeys(t, kv, secret)
	if err != nil {
		t.Fatal(err)
	}
	if got := sealedRecord(t, a); got != encryption.ContentHash(stage0) {
		t.Fatalf("sealed record %s, want the first configuration's", got)
	}
	bDir := keysServer(t, "cluster", stage0, secret)
	cb, err := storeBootstrapData(ctx, b, bDir, log)
	if err != nil {
		t.Fatal(err)
	}
	defer cb.Stop()
	if _, rev, _ := storedKeys(t, kv, secret); rev != rev0 {
		t.Fatal("a server with the same keys wrote them again")
	}

	// rotate-keys' first step on the first server: sealed at its next round.
	roundA := &clusterKeys{kv: kv, l: a, log: log}
	roundB := &clusterKeys{kv: kv, l: bDir, log: log}
	if err := os.WriteFile(a.EncryptionConfig(), stage1, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := roundA.sync(ctx); err != nil {
		t.Fatal(err)
	}
	files, _, err := storedKeys(t, kv, secret)
	if err != nil || string(files[encName]) != string(stage1) {
		t.Fatalf("the datastore does not hold the new step (%v)", err)
	}
	if got := sealedRecord(t, a); got != encryption.ContentHash(stage1) {
		t.Fatalf("sealed record %s, want the new step's", got)
	}
	// The second server takes it at its next round.
	if _, err := roundB.sync(ctx); err != nil {
		t.Fatal(err)
	}
	if have, _ := os.ReadFile(bDir.EncryptionConfig()); string(have) != string(stage1) {
		t.Fatal("the other server did not take the newer configuration")
	}
	if got := sealedRecord(t, bDir); got != encryption.ContentHash(stage1) {
		t.Fatalf("the other server's sealed record %s, want the new step's", got)
	}

	// A server that was stopped meanwhile starts with the older file: it
	// takes the newer one and does not store its own.
	stale := keysServer(t, "cluster", stage0, secret)
	cs, err := storeBootstrapData(ctx, b, stale, log)
	if err != nil {
		t.Fatal(err)
	}
	cs.Stop()
	if have, _ := os.ReadFile(stale.EncryptionConfig()); string(have) != string(stage1) {
		t.Fatal("a stale server kept its older configuration at start")
	}
	if files, _, _ := storedKeys(t, kv, secret); string(files[encName]) != string(stage1) {
		t.Fatal("a stale server put its older configuration back")
	}

	// kubling token rotate on the first server: sealed with the new secret
	// at its next round; the old one no longer opens it.
	const rotated = "the-rotated-token-secret-987654321"
	if err := appendLine(a.PreviousTokens(), (token.Token{CAHash: testCAHash, Secret: secret}).String()); err != nil {
		t.Fatal(err)
	}
	if err := token.WriteFile(a.Token(), token.Token{CAHash: testCAHash, Secret: rotated}); err != nil {
		t.Fatal(err)
	}
	if _, err := roundA.sync(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, err := storedKeys(t, kv, rotated); err != nil {
		t.Fatalf("not sealed with the rotated token: %v", err)
	}
	if _, _, err := storedKeys(t, kv, secret); !errors.Is(err, bootstrapdata.ErrWrongToken) {
		t.Fatalf("the old token still opens the keys: %v", err)
	}
	// The second server, still holding the old token, takes the new one at
	// its next round from the rotation record; the old one stays accepted
	// as its --token.
	if _, err := roundB.sync(ctx); err != nil {
		t.Fatal(err)
	}
	if got := readToken(t, bDir.Token()); got.Secret != rotated {
		t.Fatal("the other server did not take the rotated token")
	}
	if !token.Rotated(bDir.Token(), token.Token{Secret: secret}) {
		t.Error("the old token is not kept as rotated on the other server")
	}
	// A second rotation; a server stopped through both follows the chain at
	// its start.
	const rotated2 = "the-twice-rotated-secret-24680135"
	if err := appendLine(a.PreviousTokens(), (token.Token{CAHash: testCAHash, Secret: rotated}).String()); err != nil {
		t.Fatal(err)
	}
	if err := token.WriteFile(a.Token(), token.Token{CAHash: testCAHash, Secret: rotated2}); err != nil {
		t.Fatal(err)
	}
	if _, err := roundA.sync(ctx); err != nil {
		t.Fatal(err)
	}
	behind := keysServer(t, "cluster", stage1, secret)
	cbehind, err := storeBootstrapData(ctx, b, behind, log)
	if err != nil {
		t.Fatalf("a server two rotations behind: %v", err)
	}
	cbehind.Stop()
	if got := readToken(t, behind.Token()); got.Secret != rotated2 {
		t.Fatal("a server two rotations behind did not follow to the current token")
	}

	// Another cluster's data dir (its own CA) is refused, nothing written,
	// even with a token the records lead from.
	_, revBefore, _ := storedKeys(t, kv, rotated2)
	other := keysServer(t, "another", stage0, secret)
	if _, err := storeBootstrapData(ctx, b, other, log); !errors.Is(err, bootstrapdata.ErrOtherCluster) {
		t.Fatalf("another cluster's keys: %v", err)
	}
	if _, rev, _ := storedKeys(t, kv, rotated2); rev != revBefore {
		t.Fatal("another cluster's start wrote the datastore")
	}
	if got := readToken(t, other.Token()); got.Secret != secret {
		t.Fatal("another cluster's data dir took this cluster's token")
	}
}
