package token

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var ca = []byte("-----BEGIN CERTIFICATE-----\nfake\n-----END CERTIFICATE-----")

func TestParseRoundTrip(t *testing.T) {
	full := Token{CAHash: CAHash(ca), Secret: "s3cret"}.String()
	if !strings.HasPrefix(full, Prefix) {
		t.Fatal(full)
	}
	got, err := Parse(full)
	if err != nil || got.Secret != "s3cret" || got.CAHash != CAHash(ca) {
		t.Fatalf("%v %v", got, err)
	}
	if got, err := Parse("bare"); err != nil || got.Secret != "bare" || got.CAHash != "" {
		t.Fatalf("%v %v", got, err)
	}
	for _, bad := range []string{"", "KL1abc::x", "KL1" + strings.Repeat("z", 64) + "::x", "KL1" + strings.Repeat("a", 64) + "::", "a:b"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func mustParse(t *testing.T, s string) *Token {
	t.Helper()
	tok, err := Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return &tok
}

func TestEnsureKeepsSecretAndRefusesOtherCluster(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token")
	first, err := Ensure(path, nil, ca)
	if err != nil {
		t.Fatal(err)
	}
	again, err := Ensure(path, nil, ca)
	if err != nil || again != first {
		t.Fatalf("secret changed across starts: %v -> %v (%v)", first, again, err)
	}
	if _, err := Ensure(path, mustParse(t, first.String()), ca); err != nil {
		t.Fatalf("own full token refused: %v", err)
	}
	if _, err := Ensure(path, mustParse(t, first.Secret), ca); err != nil {
		t.Fatalf("own bare secret refused: %v", err)
	}
	_, err = CheckOwnership(path, mustParse(t, "another-secret"))
	if err == nil || !strings.Contains(err.Error(), "belongs to another cluster") {
		t.Fatalf("foreign token accepted: %v", err)
	}
	info, _ := os.Stat(path)
	if info.Mode().Perm() != 0o600 {
		t.Fatalf("token file mode %v", info.Mode())
	}
}

// TestRotatedTokenStaysAccepted: a --token the data dir's token has
// replaced (kept in <token>.previous) is the same cluster's: the stored one
// is used; a token never held is still refused.
func TestRotatedTokenStaysAccepted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token")
	old, err := Ensure(path, mustParse(t, "the-old-secret-0123456789"), ca)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+".previous", []byte(old.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(path, Token{CAHash: old.CAHash, Secret: "the-new-secret-9876543210"}); err != nil {
		t.Fatal(err)
	}
	stored, err := CheckOwnership(path, mustParse(t, old.String()))
	if err != nil || stored.Secret != "the-new-secret-9876543210" {
		t.Fatalf("the rotated --token: %v %v", stored, err)
	}
	if got, err := Ensure(path, mustParse(t, old.Secret), ca); err != nil || got.Secret != "the-new-secret-9876543210" {
		t.Fatalf("Ensure with the rotated --token: %v %v", got, err)
	}
	if _, err := CheckOwnership(path, mustParse(t, "never-this-clusters-0123")); err == nil {
		t.Fatal("a token the data dir never held was accepted")
	}
}

func TestEnsureUsesGivenSecretOnFirstStart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token")
	tok, err := Ensure(path, mustParse(t, "mysecret"), ca)
	if err != nil || tok.Secret != "mysecret" {
		t.Fatalf("%v %v", tok, err)
	}
	other := &Token{CAHash: CAHash([]byte("other")), Secret: "x"}
	if _, err := Ensure(filepath.Join(t.TempDir(), "token"), other, ca); err == nil {
		t.Fatal("token pinning another CA accepted for a new cluster")
	}
}

func TestBootstrap(t *testing.T) {
	id, secret := Token{Secret: "abcdef.0123456789abcdef"}.Bootstrap()
	if id != "abcdef" || secret != "0123456789abcdef" {
		t.Fatalf("bootstrap-form secret changed: %s.%s", id, secret)
	}
	id1, s1 := Token{Secret: "my-cluster-secret"}.Bootstrap()
	id2, s2 := Token{Secret: "my-cluster-secret", CAHash: CAHash(ca)}.Bootstrap()
	if id1 != id2 || s1 != s2 {
		t.Fatal("derivation depends on more than the secret")
	}
	if len(id1) != 6 || len(s1) != 16 {
		t.Fatalf("derived %s.%s has the wrong shape", id1, s1)
	}
	// Known answer: servers and agents of different builds must agree, and
	// the id (stored in clear) must come from the slow derivation, not
	// from SHA-256 as before issue 24 (which gave ff637a.7947de26a27a5335).
	if id1+"."+s1 != "8f6582.cedaf94006f35029" {
		t.Fatalf("derived %s.%s, want 8f6582.cedaf94006f35029", id1, s1)
	}
	if id3, s3 := (Token{Secret: "another"}).Bootstrap(); id3 == id1 || s3 == s1 {
		t.Fatal("different secrets derive the same token")
	}
}

// BenchmarkBootstrapDerived is what each guess at a chosen secret costs
// whoever holds a snapshot (and each join costs a node once).
func BenchmarkBootstrapDerived(b *testing.B) {
	for i := 0; i < b.N; i++ {
		Token{Secret: "my-cluster-secret"}.Bootstrap()
	}
}
