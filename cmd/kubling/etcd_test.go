//go:build !agentonly

package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/kubling/kubling/pkg/datastore"
)

func TestPrintMembers(t *testing.T) {
	now := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	var out bytes.Buffer
	printMembers(&out, []datastore.Member{
		{ID: 0xabc, Name: "server-1", PeerURLs: []string{"https://10.0.0.1:2380"}},
		{ID: 0xdef, Name: "server-2", PeerURLs: []string{"https://10.0.0.2:2380"}, Learner: true},
		{ID: 0x123, PeerURLs: []string{"https://10.0.0.3:2380"}, Learner: true, Since: now.Add(-3 * time.Minute)},
	}, now)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	want := [][]string{
		{"ID", "NAME", "STATE", "PEER URLS"},
		{"abc", "server-1", "voting", "https://10.0.0.1:2380"},
		{"def", "server-2", "learner, catching up", "https://10.0.0.2:2380"},
		{"123", "-", "learner, not started for 3m0s (removed by a join after 10m0s)", "https://10.0.0.3:2380"},
	}
	if len(lines) != len(want) {
		t.Fatalf("%d lines:\n%s", len(lines), out.String())
	}
	for i, w := range want {
		for _, field := range w {
			if !strings.Contains(lines[i], field) {
				t.Errorf("line %d lacks %q:\n%s", i+1, field, out.String())
			}
		}
	}
}
