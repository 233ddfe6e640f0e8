//go:build !agentonly

package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubling/kubling/pkg/server/pki"
)

// The table `kubling certificate check` prints: a header and one row per
// certificate, days left (expired and CAs marked).
func TestPrintCertificates(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "server", "tls")
	if _, _, err := pki.Ensure(pki.Options{Dir: dir}); err != nil {
		t.Fatal(err)
	}
	list, err := pki.List(root, []string{dir}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	list = append(list, pki.CertInfo{File: "old.crt", Subject: "old", Issuer: "ca", NotAfter: time.Unix(0, 0), DaysLeft: -3})
	var out bytes.Buffer
	if err := printCertificates(&out, list); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 1+len(list) || len(list) != 11 {
		t.Fatalf("%d lines for %d certificates:\n%s", len(lines), len(list), out.String())
	}
	if f := strings.Fields(lines[0]); strings.Join(f, " ") != "FILE SUBJECT ISSUER NOT AFTER DAYS LEFT" {
		t.Fatalf("header %q", lines[0])
	}
	want := map[string]string{
		"server/tls/client-admin.crt": "system:admin kubling-client-ca@",
		"server/tls/server-ca.crt":    "kubling-server-ca@",
	}
	for _, line := range lines[1:] {
		f := strings.Fields(line)
		if prefix, ok := want[f[0]]; ok {
			if !strings.HasPrefix(strings.Join(f[1:], " "), prefix) {
				t.Errorf("row %q", line)
			}
			delete(want, f[0])
		}
		switch {
		case f[0] == "server/tls/server-ca.crt" && f[len(f)-1] != "(CA)":
			t.Errorf("CA not marked: %q", line)
		case f[0] == "server/tls/client-admin.crt" && f[len(f)-1] != "364":
			t.Errorf("admin days left: %q", line)
		case f[0] == "old.crt" && f[len(f)-1] != "<expired>":
			t.Errorf("expired: %q", line)
		}
	}
	if len(want) != 0 {
		t.Fatalf("rows missing: %v\n%s", want, out.String())
	}
}
