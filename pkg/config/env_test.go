package config

import (
	"slices"
	"strings"
	"testing"
)

func TestChildEnvDropsKublingVariables(t *testing.T) {
	t.Setenv("KUBLING_TOKEN", "KL1abc::secret")
	t.Setenv("KUBLING_DATASTORE_ENDPOINT", "postgres://u:pw@db/k")
	t.Setenv("HTTPS_PROXY", "http://proxy:3128")
	env := ChildEnv()
	for _, kv := range env {
		if strings.HasPrefix(kv, "KUBLING_") {
			t.Errorf("passed to a child: %s", kv)
		}
	}
	if !slices.Contains(env, "HTTPS_PROXY=http://proxy:3128") {
		t.Error("other variables are dropped too")
	}
}
