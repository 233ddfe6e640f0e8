package containerd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/client"
	"gopkg.in/natefinch/lumberjack.v2"
	"k8s.io/klog/v2"

	"github.com/kubling/kubling/pkg/component"
	"github.com/kubling/kubling/pkg/config"
	"github.com/kubling/kubling/pkg/fileutil"
)

// Process supervises containerd: started from the payload with the
// generated configuration, restarted with back-off if it dies, stopped with
// SIGTERM. Containers keep running across its restarts (their shims are
// separate processes).
type Process struct {
	cfg     Config
	logFile string
	logs    *lumberjack.Logger
	log     klog.Logger

	mu      sync.Mutex
	cmd     *exec.Cmd
	cancel  context.CancelFunc
	stopped chan struct{}
}

var _ component.Component = (*Process)(nil)

// The containerd log's rotation: at most this size (MB) per file, this many
// compressed backups kept, so a chatty containerd never fills a small disk.
const (
	LogMaxSizeMB  = 10
	LogMaxBackups = 3
)

// NewProcess returns the containerd component; logs go to logFile, rotated.
func NewProcess(cfg Config, logFile string, log klog.Logger) *Process {
	logs := &lumberjack.Logger{Filename: logFile, MaxSize: LogMaxSizeMB, MaxBackups: LogMaxBackups, Compress: true}
	return &Process{cfg: cfg, logFile: logFile, logs: logs, log: log}
}

func (p *Process) Name() string { return "containerd" }

func (p *Process) configPath() string { return filepath.Join(p.cfg.Root, "config.toml") }

func (p *Process) Start(context.Context) error {
	data, err := p.cfg.Render()
	if err != nil {
		return err
	}
	for _, d := range []string{p.cfg.Root, p.cfg.State, p.cfg.CNIConfDir, p.cfg.RegistryConfigDir, filepath.Dir(p.logFile)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	if err := fileutil.WriteAtomic(p.configPath(), data, 0o600); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	p.stopped = make(chan struct{})
	first := make(chan error, 1)
	go p.supervise(ctx, first)
	return <-first
}

// supervise runs containerd until ctx ends, restarting it when it exits.
func (p *Process) supervise(ctx context.Context, first chan<- error) {
	defer close(p.stopped)
	backoff := time.Second
	for attempt := 0; ; attempt++ {
		logf, err := p.logPipe()
		if err != nil {
			if attempt == 0 {
				first <- err
				return
			}
			p.log.Error(err, "Cannot open containerd log")
		}
		if ctx.Err() != nil { // Stop raced with the back-off
			if logf != nil {
				logf.Close()
			}
			return
		}
		cmd := exec.Command(filepath.Join(p.cfg.PayloadDir, "bin", "containerd"), "--config", p.configPath())
		if logf != nil {
			cmd.Stdout, cmd.Stderr = logf, logf
		}
		// containerd dies with kubling; the shims (and so the pods) do not.
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
		cmd.Env = append(append(config.ChildEnv(), p.cfg.Env...), "PATH="+filepath.Join(p.cfg.PayloadDir, "bin")+":"+os.Getenv("PATH"))
		err = cmd.Start()
		if logf != nil {
			logf.Close() // containerd holds its own copy
			logf = nil
		}
		if attempt == 0 {
			first <- err
			if err != nil {
				return
			}
		}
		if err == nil {
			p.mu.Lock()
			p.cmd = cmd
			p.mu.Unlock()
			started := time.Now()
			err = cmd.Wait()
			if time.Since(started) > time.Minute {
				backoff = time.Second
			}
		}
		if ctx.Err() != nil {
			return
		}
		p.log.Error(err, "containerd exited; restarting", "in", backoff, "log", p.logFile)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 30*time.Second)
	}
}

// logPipe returns the write end of a pipe whose reader copies into the
// rotated log. A pipe, not the log file: whatever containerd hands its
// output to (shims outlive it) keeps writing into the current log, and
// waiting for containerd never waits for them.
func (p *Process) logPipe() (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(p.logFile), 0o700); err != nil {
		return nil, err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	go func() {
		_, _ = io.Copy(p.logs, r)
		r.Close()
	}()
	return w, nil
}

// Ready waits until containerd answers on its socket.
func (p *Process) Ready(ctx context.Context) error {
	var last error
	for {
		if last = p.probe(ctx); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last probe: %v; see %s)", ctx.Err(), last, p.logFile)
		case <-p.stopped:
			return fmt.Errorf("containerd supervisor stopped (see %s)", p.logFile)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (p *Process) probe(ctx context.Context) error {
	if _, err := os.Stat(p.cfg.Socket()); err != nil {
		return err
	}
	c, err := client.New(p.cfg.Socket(), client.WithTimeout(time.Second))
	if err != nil {
		return err
	}
	defer c.Close()
	serving, err := c.IsServing(ctx)
	if err != nil {
		return err
	}
	if !serving {
		return errors.New("containerd not serving yet")
	}
	return nil
}

// Stop sends SIGTERM and waits; containers keep running.
func (p *Process) Stop() error {
	p.cancel()
	p.mu.Lock()
	cmd := p.cmd
	p.mu.Unlock()
	if cmd != nil && cmd.Process != nil {
		_ = cmd.Process.Signal(syscall.SIGTERM)
	}
	defer p.logs.Close()
	select {
	case <-p.stopped:
		return nil
	case <-time.After(15 * time.Second):
		if cmd != nil && cmd.Process != nil {
			_ = cmd.Process.Kill()
		}
		<-p.stopped
		return errors.New("containerd did not stop within 15s; killed")
	}
}
