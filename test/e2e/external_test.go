//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubling/kubling/test/dbserver"
)

// TestExternalDatastores runs the server on each external datastore, from
// real Debian servers: objects and Secrets (encrypted) survive a restart,
// and a server started while its datastore is down waits for it, saying
// so, instead of failing or half-starting.
func TestExternalDatastores(t *testing.T) {
	for _, kind := range []string{"postgres", "mariadb", "etcd"} {
		t.Run(kind, func(t *testing.T) {
			ds, err := dbserver.Init(kind, filepath.Join(t.TempDir(), kind))
			if err != nil {
				t.Fatal(err)
			}
			startDB := func() *dbserver.Server {
				t.Helper()
				db, err := ds.Start()
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(db.Stop)
				return db
			}
			db := startDB()
			s := newServer(t)
			s.start(ds.Flags...)
			s.kubectl("create", "namespace", "e2e")
			s.kubectl("create", "configmap", "kept", "-n", "e2e", "--from-literal=k=v-kept")
			s.kubectl("create", "secret", "generic", "hush", "-n", "e2e", "--from-literal=k=hush-value")
			if _, err := os.Stat(filepath.Join(s.dataDir, "server", "db", "state.db")); err == nil {
				t.Error("a SQLite database was made beside the external datastore")
			}
			s.stop()

			// Another cluster's first start on this datastore: one line,
			// nothing left in its data dir.
			other := newServer(t)
			code, out := run(t, exec.Command(bin, append([]string{"server", "--disable-agent", "--data-dir", other.dataDir, "--write-kubeconfig", other.kubeconfig}, ds.Flags...)...))
			// The start had logged its progress; the error is its last line.
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if code == 0 || !strings.Contains(lines[len(lines)-1], "this datastore belongs to another cluster") {
				t.Errorf("another cluster's start: exit %d\n%s", code, out)
			}
			if left, _ := filepath.Glob(filepath.Join(other.dataDir, "server", "*")); len(left) > 0 {
				t.Errorf("the refused start left %v", left)
			}

			// Wrong credentials: the server says why (once per reason, or
			// kine's own ping lines), keeps retrying, and never shows the
			// password it was given.
			if kind != "etcd" {
				const wrong = "not-the-password"
				bad := newServer(t)
				bad.startNoWait("--datastore-endpoint", strings.Replace(ds.Endpoint, dbserver.Password, wrong, 1))
				eventually(t, time.Minute, "the refused login logged", func() string {
					out := bad.out.String()
					if n := strings.Count(out, "Access denied") + strings.Count(out, "password authentication failed"); n < 1 {
						return fmt.Sprintf("no refusal logged:\n%s", out)
					}
					return ""
				})
				select {
				case <-bad.exited:
					t.Errorf("the server exited on refused credentials instead of retrying:\n%s", bad.out)
				case <-time.After(5 * time.Second):
				}
				if strings.Contains(bad.out.String(), wrong) {
					t.Errorf("the log shows the wrong password:\n%s", bad.out)
				}
				bad.kill()
			}

			// The datastore goes away; the server waits for it, saying so,
			// past its back-off's cap (30 s) and its components' ready
			// timeout (2 minutes, PostgreSQL here: a site's database may
			// boot long after kubling), and serves once it is back.
			db.Stop()
			s.startNoWait(ds.Flags...)
			eventually(t, time.Minute, "a logged retry", func() string {
				// kubling's back-off (one line per reason), or kine's own
				// once-a-second ping (for 5 minutes before it gives up).
				out := s.out.String()
				if n := strings.Count(out, "not reachable yet; retrying") + strings.Count(out, "Failed to ping database connection"); n < 1 {
					return fmt.Sprintf("no retry logged:\n%s", out)
				}
				return ""
			})
			away := 70 * time.Second
			if kind == "postgres" {
				away = 130 * time.Second
			}
			select {
			case <-s.exited:
				t.Fatalf("the server gave up while its datastore was away:\n%s", s.out)
			case <-time.After(away):
			}
			if strings.Contains(s.out.String(), dbserver.Password) {
				t.Errorf("the log shows the datastore's password:\n%s", s.out)
			}
			db = startDB()
			s.waitReady()
			if got := s.kubectl("get", "configmap", "kept", "-n", "e2e", "-o", "jsonpath={.data.k}"); got != "v-kept" {
				t.Errorf("configmap after restart = %q", got)
			}
			if got := s.kubectl("get", "secret", "hush", "-n", "e2e", "-o", "jsonpath={.data.k}"); got != "aHVzaC12YWx1ZQ==" {
				t.Errorf("secret after restart = %q", got)
			}
			s.stop()
		})
	}
}
