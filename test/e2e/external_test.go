//go:build e2e

package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kubling/kubling/pkg/server/pki"
)

// dbServer is a database server the test runs as a local process on
// loopback, from Debian's packages (scripts/deps.sh installs them).
type dbServer struct {
	t    *testing.T
	name string
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan struct{}
}

func startDB(t *testing.T, name string, cmd *exec.Cmd, port int) *dbServer {
	t.Helper()
	d := &dbServer{t: t, name: name, cmd: cmd, out: &lockedBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = d.out, d.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { cmd.Wait(); close(d.done) }()
	t.Cleanup(d.stop)
	eventually(t, time.Minute, name+" listening on 127.0.0.1:"+strconv.Itoa(port), func() string {
		select {
		case <-d.done:
			t.Fatalf("%s exited:\n%s", name, d.out)
		default:
		}
		c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), time.Second)
		if err != nil {
			return err.Error()
		}
		c.Close()
		return ""
	})
	return d
}

func (d *dbServer) stop() {
	select {
	case <-d.done:
		return
	default:
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(30 * time.Second):
		d.cmd.Process.Kill()
		<-d.done
	}
}

func freeTCPPort(t *testing.T) int {
	t.Helper()
	l, err := listenAny()
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return portOf(l)
}

// asUser runs cmd as the named system user (the database servers refuse
// root), in a folder it owns.
func asUser(t *testing.T, name string, dir string, cmd *exec.Cmd) *exec.Cmd {
	t.Helper()
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatalf("user %s (from the Debian package): %v", name, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	// The test's temporary folders are root's alone (0700): let the user
	// pass through them to its own.
	for p := filepath.Dir(dir); strings.HasPrefix(p, os.TempDir()+"/"); p = filepath.Dir(p) {
		if err := os.Chmod(p, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	cmd.Dir = dir
	return cmd
}

// initPostgres initialises a cluster in a fresh folder and returns what
// serves it on port, with a password for user kubling.
func initPostgres(t *testing.T, port int) func() *dbServer {
	t.Helper()
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	if len(bins) == 0 {
		t.Fatal("PostgreSQL is not installed (scripts/deps.sh test installs Debian's postgresql)")
	}
	bin := bins[len(bins)-1]
	dir := filepath.Join(t.TempDir(), "pg")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte("kubling-pass\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	initdb := asUser(t, "postgres", dir, exec.Command(bin+"/initdb", "-D", data, "-U", "kubling", "--pwfile", pw, "-A", "scram-sha-256", "--no-sync"))
	os.Chown(pw, 0, 0)
	if err := os.Chmod(pw, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := initdb.CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	return func() *dbServer {
		return startDB(t, "postgres", asUser(t, "postgres", dir, exec.Command(bin+"/postgres", "-D", data, "-h", "127.0.0.1", "-p", strconv.Itoa(port), "-k", dir)), port)
	}
}

// initMariaDB initialises a data dir and returns what serves it on port,
// with a password for user kubling over TCP.
func initMariaDB(t *testing.T, port int) func() *dbServer {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "mariadb")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	install := asUser(t, "mysql", dir, exec.Command("mariadb-install-db", "--no-defaults", "--datadir="+data, "--auth-root-authentication-method=normal", "--skip-test-db"))
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("mariadb-install-db: %v\n%s", err, out)
	}
	init := filepath.Join(dir, "init.sql")
	if err := os.WriteFile(init, []byte("CREATE USER IF NOT EXISTS 'kubling'@'127.0.0.1' IDENTIFIED BY 'kubling-pass';\nGRANT ALL ON *.* TO 'kubling'@'127.0.0.1';\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return func() *dbServer {
		return startDB(t, "mariadb", asUser(t, "mysql", dir, exec.Command("mariadbd", "--no-defaults", "--datadir="+data, "--bind-address=127.0.0.1",
			"--port="+strconv.Itoa(port), "--socket="+filepath.Join(dir, "sock"), "--pid-file="+filepath.Join(dir, "pid"), "--init-file="+init, "--skip-name-resolve")), port)
	}
}

// initEtcd returns what serves Debian's etcd on port, with mutual TLS from
// a CA made by kubling's PKI code, and the client's files.
func initEtcd(t *testing.T, port int) (func() *dbServer, pki.PKI) {
	t.Helper()
	dir := t.TempDir()
	p, _, err := pki.Ensure(pki.Options{Dir: filepath.Join(dir, "tls"), Etcd: true,
		APIServerSAN: pki.SANs{DNSNames: []string{"localhost"}, IPs: []net.IP{net.ParseIP("127.0.0.1")}}})
	if err != nil {
		t.Fatal(err)
	}
	url := fmt.Sprintf("https://127.0.0.1:%d", port)
	peer := freeTCPPort(t)
	return func() *dbServer {
		cmd := exec.Command("etcd", "--data-dir", filepath.Join(dir, "data"), "--name", "external",
			"--listen-client-urls", url, "--advertise-client-urls", url,
			"--listen-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", peer),
			"--initial-advertise-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", peer),
			"--initial-cluster", fmt.Sprintf("external=http://127.0.0.1:%d", peer),
			"--cert-file", p.Cert(pki.EtcdServer), "--key-file", p.Key(pki.EtcdServer),
			"--trusted-ca-file", p.Cert(pki.EtcdCA), "--client-cert-auth")
		return startDB(t, "etcd", cmd, port)
	}, p
}

// TestExternalDatastores runs the server on each external datastore, from
// real Debian servers: objects and Secrets (encrypted) survive a restart,
// and a server started before its datastore answers waits for it, saying
// so, instead of failing or half-starting.
func TestExternalDatastores(t *testing.T) {
	cases := []struct {
		name string
		// init makes the datastore's data and returns its endpoint, the
		// flags it takes, and what (re)starts its server on that data.
		init func(t *testing.T, port int) (endpoint string, extra []string, start func() *dbServer)
	}{
		{"postgres", func(t *testing.T, port int) (string, []string, func() *dbServer) {
			return fmt.Sprintf("postgres://kubling:kubling-pass@127.0.0.1:%d/kubling?sslmode=disable", port), nil, initPostgres(t, port)
		}},
		{"mariadb", func(t *testing.T, port int) (string, []string, func() *dbServer) {
			return fmt.Sprintf("mysql://kubling:kubling-pass@tcp(127.0.0.1:%d)/kubling", port), nil, initMariaDB(t, port)
		}},
		{"etcd", func(t *testing.T, port int) (string, []string, func() *dbServer) {
			start, p := initEtcd(t, port)
			return fmt.Sprintf("https://127.0.0.1:%d", port), []string{"--datastore-cafile", p.Cert(pki.EtcdCA),
				"--datastore-certfile", p.Cert(pki.EtcdClient), "--datastore-keyfile", p.Key(pki.EtcdClient)}, start
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			port := freeTCPPort(t)
			endpoint, extra, startServer := c.init(t, port)
			db := startServer()
			args := append([]string{"--datastore-endpoint", endpoint}, extra...)
			s := newServer(t)
			s.start(args...)
			s.kubectl("create", "namespace", "e2e")
			s.kubectl("create", "configmap", "kept", "-n", "e2e", "--from-literal=k=v-kept")
			s.kubectl("create", "secret", "generic", "hush", "-n", "e2e", "--from-literal=k=hush-value")
			if _, err := os.Stat(filepath.Join(s.dataDir, "server", "db", "state.db")); err == nil {
				t.Error("a SQLite database was made beside the external datastore")
			}
			s.stop()

			// The datastore goes away; the server waits for it, logging
			// each try, and serves once it is back.
			db.stop()
			s.startNoWait(args...)
			eventually(t, time.Minute, "two logged retries", func() string {
				// kubling's back-off, or kine's own once-a-second ping
				// (Postgres: kine pings for 5 minutes before it gives up).
				out := s.out.String()
				if n := strings.Count(out, "not reachable yet; retrying") + strings.Count(out, "Failed to ping database connection"); n < 2 {
					return fmt.Sprintf("%d retries logged:\n%s", n, s.out)
				}
				return ""
			})
			if strings.Contains(s.out.String(), "kubling-pass") {
				t.Errorf("the log shows the datastore's password:\n%s", s.out)
			}
			db = startServer()
			s.waitReady()
			if got := s.kubectl("get", "configmap", "kept", "-n", "e2e", "-o", "jsonpath={.data.k}"); got != "v-kept" {
				t.Errorf("configmap after restart = %q", got)
			}
			if got := s.kubectl("get", "secret", "hush", "-n", "e2e", "-o", "jsonpath={.data.k}"); got != "aHVzaC12YWx1ZQ==" {
				t.Errorf("secret after restart = %q", got)
			}
			s.stop()
			db.stop()
		})
	}
}
