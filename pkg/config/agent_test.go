package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const goodToken = "KL1" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" + "::abcdef.0123456789abcdef"

func TestAgentDefaultsAndTokenFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte(goodToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a := Agent{Server: "https://10.0.0.1:6443", TokenFile: file, Node: Node{NodeName: "Worker-1"}}
	if err := a.Normalize(); err != nil {
		t.Fatal(err)
	}
	if a.Token != goodToken || a.NodeName != "worker-1" || a.DataDir != DefaultDataDir {
		t.Fatalf("normalized: %+v", a)
	}
	if err := a.Validate(); err != nil {
		t.Fatal(err)
	}
	both := Agent{Token: goodToken, TokenFile: file}
	if err := both.Normalize(); err == nil {
		t.Fatal("--token and --token-file both accepted")
	}
	missing := Agent{TokenFile: filepath.Join(t.TempDir(), "none")}
	if err := missing.Normalize(); err == nil || !strings.Contains(err.Error(), "--token-file") {
		t.Fatalf("missing token file: %v", err)
	}
}

func TestAgentValidateRejects(t *testing.T) {
	good := func() Agent {
		return Agent{Server: "https://10.0.0.1:6443", Token: goodToken, Node: Node{NodeName: "n1"}}
	}
	cases := map[string]func(a *Agent){
		"--server is required": func(a *Agent) { a.Server = "" },
		"want https://":        func(a *Agent) { a.Server = "http://10.0.0.1:6443" },
		"--token is required":  func(a *Agent) { a.Token = "" },
		"bare secret":          func(a *Agent) { a.Token = "just-a-secret" },
		"CA hash is not hex":   func(a *Agent) { a.Token = "KL1" + strings.Repeat("z", 64) + "::x" },
		"--node-name":          func(a *Agent) { a.NodeName = "Bad_Name" },
		"--node-ip":            func(a *Agent) { a.NodeIP = "10.0.0" },
		"--node-label":         func(a *Agent) { a.NodeLabels = []string{"novalue"} },
		"--kubelet-arg":        func(a *Agent) { a.KubeletArgs = []string{"max-pods"} },
		"--kube-proxy-arg":     func(a *Agent) { a.KubeProxyArgs = []string{"=1"} },
	}
	for want, mutate := range cases {
		a := good()
		mutate(&a)
		err := a.Validate()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v", want, err)
		}
	}
}
