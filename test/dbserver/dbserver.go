// Package dbserver runs the external datastores kubling's tests and
// benchmarks use: Debian's PostgreSQL, MariaDB and etcd (scripts/deps.sh
// installs them), each as a local process on loopback with its data in a
// folder of the caller's, never as a system service.
package dbserver

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kubling/kubling/pkg/server/pki"
)

// Password is the kubling user's password on the SQL servers.
const Password = "kubling-pass"

// Server is a running database server.
type Server struct {
	Name string
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  bytes.Buffer
	done chan struct{}
}

func (s *Server) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.out.Write(p)
}

// Output is what the server printed.
func (s *Server) Output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.out.String()
}

// Stop ends the server (SIGTERM, then SIGKILL after 30 s).
func (s *Server) Stop() {
	select {
	case <-s.done:
		return
	default:
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
}

// Pid is the server's process.
func (s *Server) Pid() int { return s.cmd.Process.Pid }

// Datastore is an initialised datastore: kubling's flags for it, and what
// starts its server on its data (again after a Stop).
type Datastore struct {
	Kind     string
	Endpoint string
	// Flags are kubling server's flags for it, --datastore-endpoint too.
	Flags []string
	Start func() (*Server, error)
}

func start(name string, cmd *exec.Cmd, port int) (*Server, error) {
	s := &Server{Name: name, cmd: cmd, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = s, s
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() { cmd.Wait(); close(s.done) }()
	deadline := time.Now().Add(time.Minute)
	for {
		select {
		case <-s.done:
			return nil, fmt.Errorf("%s exited:\n%s", name, s.Output())
		default:
		}
		c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), time.Second)
		if err == nil {
			c.Close()
			return s, nil
		}
		if time.Now().After(deadline) {
			s.Stop()
			return nil, fmt.Errorf("%s not listening on 127.0.0.1:%d after 1m:\n%s", name, port, s.Output())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// FreePort is a TCP port free on loopback now.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// asUser runs cmd as the named system user (the SQL servers refuse root)
// in dir, which it comes to own.
func asUser(name, dir string, cmd *exec.Cmd) (*exec.Cmd, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("user %s (from the Debian package): %w", name, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(dir, uid, gid); err != nil {
		return nil, err
	}
	// Temporary folders are root's alone (0700): let the user pass
	// through them to its own.
	for p := filepath.Dir(dir); strings.HasPrefix(p, os.TempDir()+"/"); p = filepath.Dir(p) {
		if err := os.Chmod(p, 0o711); err != nil {
			return nil, err
		}
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	cmd.Dir = dir
	return cmd, nil
}

// Postgres initialises a PostgreSQL cluster in dir (made, must not exist)
// with user kubling, served on port.
func Postgres(dir string, port int) (Datastore, error) { return PostgresOn(dir, "127.0.0.1", port, "") }

// PostgresOn is Postgres served on host too (and loopback), taking clients
// from the CIDR clients as well (the multi-node test's containers); the
// endpoint names host.
func PostgresOn(dir, host string, port int, clients string) (Datastore, error) {
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	if len(bins) == 0 {
		return Datastore{}, errors.New("PostgreSQL is not installed (scripts/deps.sh test installs Debian's postgresql)")
	}
	bin := bins[len(bins)-1]
	if err := os.Mkdir(dir, 0o700); err != nil {
		return Datastore{}, err
	}
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte(Password+"\n"), 0o644); err != nil {
		return Datastore{}, err
	}
	data := filepath.Join(dir, "data")
	initdb, err := asUser("postgres", dir, exec.Command(bin+"/initdb", "-D", data, "-U", "kubling", "--pwfile", pw, "-A", "scram-sha-256", "--no-sync"))
	if err != nil {
		return Datastore{}, err
	}
	if out, err := initdb.CombinedOutput(); err != nil {
		return Datastore{}, fmt.Errorf("initdb: %v\n%s", err, out)
	}
	listen := "127.0.0.1"
	if clients != "" {
		hba, err := os.OpenFile(filepath.Join(data, "pg_hba.conf"), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			return Datastore{}, err
		}
		_, err = fmt.Fprintf(hba, "host all all %s scram-sha-256\n", clients)
		if err := errors.Join(err, hba.Close()); err != nil {
			return Datastore{}, err
		}
	}
	if host != listen {
		listen += "," + host
	}
	endpoint := fmt.Sprintf("postgres://kubling:%s@%s/kubling?sslmode=disable", Password, net.JoinHostPort(host, strconv.Itoa(port)))
	return Datastore{Kind: "postgres", Endpoint: endpoint, Flags: []string{"--datastore-endpoint", endpoint}, Start: func() (*Server, error) {
		cmd, err := asUser("postgres", dir, exec.Command(bin+"/postgres", "-D", data, "-h", listen, "-p", strconv.Itoa(port), "-k", dir))
		if err != nil {
			return nil, err
		}
		return start("postgres", cmd, port)
	}}, nil
}

// MariaDB initialises a MariaDB data dir in dir (made, must not exist)
// with user kubling over TCP, served on port.
func MariaDB(dir string, port int) (Datastore, error) {
	if err := os.Mkdir(dir, 0o700); err != nil {
		return Datastore{}, err
	}
	data := filepath.Join(dir, "data")
	install, err := asUser("mysql", dir, exec.Command("mariadb-install-db", "--no-defaults", "--datadir="+data, "--auth-root-authentication-method=normal", "--skip-test-db"))
	if err != nil {
		return Datastore{}, err
	}
	if out, err := install.CombinedOutput(); err != nil {
		return Datastore{}, fmt.Errorf("mariadb-install-db: %v\n%s", err, out)
	}
	init := filepath.Join(dir, "init.sql")
	sql := fmt.Sprintf("CREATE USER IF NOT EXISTS 'kubling'@'127.0.0.1' IDENTIFIED BY '%s';\nGRANT ALL ON *.* TO 'kubling'@'127.0.0.1';\n", Password)
	if err := os.WriteFile(init, []byte(sql), 0o644); err != nil {
		return Datastore{}, err
	}
	endpoint := fmt.Sprintf("mysql://kubling:%s@tcp(127.0.0.1:%d)/kubling", Password, port)
	return Datastore{Kind: "mariadb", Endpoint: endpoint, Flags: []string{"--datastore-endpoint", endpoint}, Start: func() (*Server, error) {
		cmd, err := asUser("mysql", dir, exec.Command("mariadbd", "--no-defaults", "--datadir="+data, "--bind-address=127.0.0.1",
			"--port="+strconv.Itoa(port), "--socket="+filepath.Join(dir, "sock"), "--pid-file="+filepath.Join(dir, "pid"), "--init-file="+init, "--skip-name-resolve"))
		if err != nil {
			return nil, err
		}
		return start("mariadb", cmd, port)
	}}, nil
}

// Etcd prepares Debian's etcd in dir, served on port with mutual TLS from
// an etcd CA made by kubling's own PKI code (so the flags carry
// --datastore-cafile, -certfile and -keyfile).
func Etcd(dir string, port int) (Datastore, error) {
	p, _, err := pki.Ensure(pki.Options{Dir: filepath.Join(dir, "tls"), Etcd: true,
		APIServerSAN: pki.SANs{DNSNames: []string{"localhost"}, IPs: []net.IP{net.ParseIP("127.0.0.1")}}})
	if err != nil {
		return Datastore{}, err
	}
	peer, err := FreePort()
	if err != nil {
		return Datastore{}, err
	}
	url := fmt.Sprintf("https://127.0.0.1:%d", port)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", peer)
	flags := []string{"--datastore-endpoint", url, "--datastore-cafile", p.Cert(pki.EtcdCA),
		"--datastore-certfile", p.Cert(pki.EtcdClient), "--datastore-keyfile", p.Key(pki.EtcdClient)}
	return Datastore{Kind: "etcd", Endpoint: url, Flags: flags, Start: func() (*Server, error) {
		cmd := exec.Command("etcd", "--data-dir", filepath.Join(dir, "data"), "--name", "external",
			"--listen-client-urls", url, "--advertise-client-urls", url,
			"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL, "--initial-cluster", "external="+peerURL,
			"--cert-file", p.Cert(pki.EtcdServer), "--key-file", p.Key(pki.EtcdServer),
			"--trusted-ca-file", p.Cert(pki.EtcdCA), "--client-cert-auth")
		return start("etcd", cmd, port)
	}}, nil
}

// Init initialises the external datastore of kind (postgres, mariadb or
// etcd) in dir, on a free loopback port.
func Init(kind, dir string) (Datastore, error) {
	port, err := FreePort()
	if err != nil {
		return Datastore{}, err
	}
	switch kind {
	case "postgres":
		return Postgres(dir, port)
	case "mariadb":
		return MariaDB(dir, port)
	case "etcd":
		return Etcd(dir, port)
	}
	return Datastore{}, fmt.Errorf("no external datastore %q", kind)
}
