package component

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestHTTPProbeContains: 200 is not enough while the body lacks the text.
func TestHTTPProbeContains(t *testing.T) {
	body := "[+]ping ok\n"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, body) }))
	defer srv.Close()
	probe := HTTPProbeContains(srv.URL+"/healthz?verbose", nil, "-controller ok")
	if err := probe(context.Background()); err == nil {
		t.Fatal("ready before the controllers' checks are listed")
	}
	body += "[+]attachdetach-controller ok\n"
	if err := probe(context.Background()); err != nil {
		t.Fatal(err)
	}
}
