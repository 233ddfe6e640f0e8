package token

import (
	"regexp"
	"strings"
	"testing"
	"unicode"

	bootstraputil "k8s.io/cluster-bootstrap/token/util"
)

var lowerHex64 = regexp.MustCompile(`^[0-9a-f]{64}$`)

// The fixed text Parse's errors may show; anything else of the input they
// show must be the part before the secret.
const parseErrorText = `token is empty token "…": want KL1<64 hex digits>::<secret> CA hash is not hex token secret must not contain spaces, control characters or colons`

// FuzzParse: whatever a user passes as --token or KUBLING_TOKEN, or whatever
// the token file holds. A token that parses has a secret and either no CA
// hash or 64 lower-case hex digits; it re-serialises to the text given
// (the hash's case aside) and parses back to itself, also as the token file
// stores it (with a newline); it maps to a valid bootstrap token that
// depends on the secret only. An error never shows the secret.
func FuzzParse(f *testing.F) {
	hash := CAHash([]byte("ca"))
	for _, s := range []string{
		"KL1" + hash + "::s3cret-s3cret-s3cret",
		"KL1" + strings.ToUpper(hash) + "::secret",
		"  KL1" + hash + "::secret\n",
		"KL1" + hash + "::abcdef.0123456789abcdef",
		"KL1" + hash + "::a::b",
		"KL1" + hash + "::::",
		"KL1" + hash + "::",
		"KL1" + hash + ":secret",
		"KL1" + hash[:63] + "::secret",
		"KL1" + hash + "0::secret",
		"KL1" + strings.Repeat("z", 64) + "::secret",
		"KL1" + strings.Repeat("é", 32) + "::secret",
		"KL1::secret",
		"KL1",
		"KL2" + hash + "::secret",
		"kl1" + hash + "::secret",
		"abcdef.0123456789abcdef",
		"ABCDEF.0123456789abcdef",
		"0123456789abcdef0123456789abcdef0123456789abcdef",
		"bare",
		"",
		"   ",
		"\n\t",
		"a:b",
		"a b",
		"a\tb",
		"a\vb",
		"a\u00a0b",
		"a\x00b",
		"\xff\xfe",
		"KL1" + hash + "::sec\nret",
		"KL1" + hash + "::sec ret",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := Parse(s)
		if err != nil {
			checkRedacted(t, s, err)
			return
		}
		if tok.Secret == "" {
			t.Fatalf("%q: parsed with an empty secret", s)
		}
		trimmed := strings.TrimSpace(s)
		if tok.CAHash == "" {
			if strings.HasPrefix(tok.Secret, Prefix) {
				t.Fatalf("%q: bare secret %q starts with %s", s, tok.Secret, Prefix)
			}
			if strings.ContainsFunc(tok.Secret, func(r rune) bool { return r == ':' || unicode.IsSpace(r) || unicode.IsControl(r) }) {
				t.Fatalf("%q: bare secret %q has a colon, a space or a control character", s, tok.Secret)
			}
			if tok.String() != trimmed {
				t.Fatalf("%q: String() = %q, want %q", s, tok.String(), trimmed)
			}
		} else {
			if !lowerHex64.MatchString(tok.CAHash) {
				t.Fatalf("%q: CA hash %q is not 64 lower-case hex digits", s, tok.CAHash)
			}
			if !strings.EqualFold(tok.String(), trimmed) || !strings.HasSuffix(trimmed, "::"+tok.Secret) {
				t.Fatalf("%q: String() = %q, not the token given", s, tok.String())
			}
		}
		for _, again := range []string{tok.String(), tok.String() + "\n"} {
			back, err := Parse(again)
			if err != nil || back != tok {
				t.Fatalf("%q: Parse(%q) = %+v, %v; want %+v", s, again, back, err, tok)
			}
		}
		id, secret := tok.Bootstrap()
		if !bootstraputil.IsValidBootstrapToken(id + "." + secret) {
			t.Fatalf("%q: bootstrap token %q.%q is not valid", s, id, secret)
		}
		if bootstraputil.IsValidBootstrapToken(tok.Secret) && id+"."+secret != tok.Secret {
			t.Fatalf("%q: bootstrap-form secret became %s.%s", s, id, secret)
		}
		if id2, secret2 := (Token{Secret: tok.Secret}).Bootstrap(); id2 != id || secret2 != secret {
			t.Fatalf("%q: bootstrap token depends on the CA hash", s)
		}
	})
}

// checkRedacted fails when Parse's error shows the secret of s: the text
// after the first "::", or, without one, all that follows the prefix.
func checkRedacted(t *testing.T, s string, err error) {
	t.Helper()
	msg := err.Error()
	trimmed := strings.TrimSpace(s)
	shown, secret := "", trimmed
	if i := strings.Index(trimmed, "::"); i >= 0 {
		shown, secret = trimmed[:i+2], trimmed[i+2:]
	} else if rest, ok := strings.CutPrefix(trimmed, Prefix); ok {
		shown, secret = Prefix, rest
	}
	if len(secret) < 4 || strings.Contains(shown, secret) || strings.Contains(parseErrorText, secret) {
		return // too short to tell, or shown for another reason
	}
	if strings.Contains(msg, secret) {
		t.Fatalf("%q: error shows the secret: %v", s, err)
	}
}
