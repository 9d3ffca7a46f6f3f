package pgcluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ca-a2a/ca-a2a/internal/loopback"
	"github.com/ca-a2a/ca-a2a/internal/procgroup"
)

const (
	// initdbTimeout bounds initdb (about a second on a quiet machine).
	initdbTimeout = 2 * time.Minute
	// readyTimeout bounds how long one server start waits for a connection.
	readyTimeout = 60 * time.Second
	// stopTimeout bounds a fast shutdown before the process group is killed.
	stopTimeout = 20 * time.Second
	// killTimeout bounds the wait for the postmaster after SIGKILL.
	killTimeout = 10 * time.Second
	// attempts covers the window between loopback.FreePort closing its
	// listener and postgres binding the port, where another process may take it.
	attempts = 3
	// maxSocketPath is below the 108 bytes of sun_path.
	maxSocketPath = 100
)

// libDirGlob is where Debian installs the server binaries (not on PATH);
// a variable so that the tests can hide them.
var libDirGlob = "/usr/lib/postgresql/*/bin"

// Binaries are the server programs of one PostgreSQL installation.
type Binaries struct {
	Initdb, Postgres string
}

// ErrNoBinaries: FindBinaries found no installation.
var ErrNoBinaries = errors.New("pgcluster: initdb and postgres were found neither on PATH nor under /usr/lib/postgresql/*/bin")

// FindBinaries prefers initdb on PATH with the postgres of the same
// installation (initdb and postgres of different versions do not mix), then
// the newest version under /usr/lib/postgresql/*/bin.
func FindBinaries() (Binaries, error) {
	var candidates []Binaries
	if p, err := exec.LookPath("initdb"); err == nil {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			d := filepath.Dir(r)
			candidates = append(candidates, Binaries{Initdb: r, Postgres: filepath.Join(d, "postgres")})
		}
		if pg, err := exec.LookPath("postgres"); err == nil {
			candidates = append(candidates, Binaries{Initdb: p, Postgres: pg})
		}
	}
	lib, _ := filepath.Glob(libDirGlob)
	sort.Slice(lib, func(i, j int) bool { return versionOf(lib[i]) > versionOf(lib[j]) })
	for _, d := range lib {
		candidates = append(candidates, Binaries{Initdb: filepath.Join(d, "initdb"), Postgres: filepath.Join(d, "postgres")})
	}
	for _, b := range candidates {
		if executable(b.Initdb) && executable(b.Postgres) {
			return b, nil
		}
	}
	return Binaries{}, ErrNoBinaries
}

// versionOf reads 15 from /usr/lib/postgresql/15/bin; 0 when it cannot.
func versionOf(binDir string) float64 {
	v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(binDir)), 64)
	return v
}

func executable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o111 != 0
}

// account is the unprivileged user the server runs as when this process runs as
// root.
type account struct {
	name     string
	uid, gid uint32
}

// accounts are the candidates for running the server as root, in order of
// preference; a variable so that the tests can try the fallback.
var accounts = []string{"postgres", "nobody"}

// runAs picks the account: nil (the current user) unless root; then
// "postgres", which Debian's postgresql package creates, or "nobody", which
// every Debian system has.
func runAs() (*account, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	for _, name := range accounts {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 != nil || err2 != nil || uid == 0 {
			continue
		}
		return &account{name: name, uid: uint32(uid), gid: uint32(gid)}, nil
	}
	return nil, errors.New("pgcluster: running as root and no unprivileged account (postgres, nobody) exists to run PostgreSQL as; create one (useradd --system postgres)")
}

// searchable reports whether a can traverse every directory from dir up to /.
func (a *account) searchable(dir string) error {
	for d := dir; ; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil {
			return err
		}
		sys, ok := st.Sys().(*syscall.Stat_t)
		if !ok {
			return nil
		}
		perm := st.Mode().Perm()
		var bit os.FileMode = 0o001
		switch {
		case sys.Uid == a.uid:
			bit = 0o100
		case sys.Gid == a.gid:
			bit = 0o010
		}
		if perm&bit == 0 {
			return fmt.Errorf("pgcluster: user %s cannot enter %s (mode %v); set TMPDIR to a directory every user can traverse, such as /tmp", a.name, d, perm)
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

// sysProcAttr runs the child as the account; procgroup puts it in a
// process group of its own, out of reach of the terminal's signals and
// killable as a whole (initdb's children).
func (c *Cluster) sysProcAttr() *syscall.SysProcAttr {
	attr := &syscall.SysProcAttr{}
	if c.acct != nil {
		attr.Credential = &syscall.Credential{Uid: c.acct.uid, Gid: c.acct.gid, Groups: []uint32{}}
	}
	return attr
}

// env is the whole environment of initdb and postgres: nothing of the
// caller's PG* variables, a fixed time zone (which also spares initdb its
// time zone search) and the C locale.
func (c *Cluster) env() []string {
	return []string{"PATH=/usr/bin:/bin", "LC_ALL=C", "TZ=UTC", "HOME=" + c.dir, "TMPDIR=" + c.dir}
}

// writeFile writes a file the server reads and gives it to the account.
func (c *Cluster) writeFile(path string, data []byte, mode os.FileMode) error {
	if err := os.WriteFile(path, data, mode); err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	}
	return c.chown(path)
}

func (c *Cluster) mkdir(path string) error {
	if err := os.Mkdir(path, 0o700); err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	}
	return c.chown(path)
}

func (c *Cluster) chown(path string) error {
	if c.acct == nil {
		return nil
	}
	if err := os.Chown(path, int(c.acct.uid), int(c.acct.gid)); err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	}
	return nil
}

// newCluster sets a cluster up and starts it. It returns the cluster as soon
// as there is something to clean up, also with an error.
func newCluster(bins Binaries, o Options) (*Cluster, error) {
	acct, err := runAs()
	if err != nil {
		return nil, err
	}
	password, err := RandomPassword(16)
	if err != nil {
		return nil, err
	}
	tmp := os.TempDir()
	if acct != nil {
		if err := acct.searchable(tmp); err != nil {
			return nil, err
		}
	}
	prefix := o.Prefix
	if prefix == "" {
		prefix = "pgcluster"
	}
	dir, err := os.MkdirTemp(tmp, prefix+"-")
	if err != nil {
		return nil, fmt.Errorf("pgcluster: %w", err)
	}
	c := &Cluster{
		bins: bins, acct: acct, dir: dir, password: password,
		dataDir: filepath.Join(dir, "data"), sockDir: filepath.Join(dir, "s"),
		settings: o.Settings,
	}
	if err := c.chown(dir); err != nil {
		return c, err
	}
	// The log lives outside dir so that it can outlive a failed run. The
	// children write into it directly through their inherited descriptor.
	var log *os.File
	if o.LogPath != "" {
		log, err = os.OpenFile(o.LogPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	} else {
		log, err = os.CreateTemp(tmp, prefix+"-*.log")
		c.ownLog = err == nil
	}
	if err != nil {
		return c, fmt.Errorf("pgcluster: %w", err)
	}
	c.logPath = log.Name()
	log.Close()
	if err := c.mkdir(c.sockDir); err != nil {
		return c, err
	}
	if n := len(filepath.Join(c.sockDir, ".s.PGSQL.65535")); n > maxSocketPath {
		return c, fmt.Errorf("pgcluster: socket path under %s is %d bytes, over the unix limit; use a shorter TMPDIR", c.sockDir, n)
	}
	if err := c.initdb(); err != nil {
		return c, err
	}
	if o.TLS != nil {
		if err := c.writeTLS(o.TLS); err != nil {
			return c, err
		}
	}
	if err := c.writeHBA(o.TLS != nil); err != nil {
		return c, err
	}
	for i := 0; i < attempts; i++ {
		if c.port, err = loopback.FreePort(); err != nil {
			return c, fmt.Errorf("pgcluster: %w", err)
		}
		c.mu.Lock()
		err = c.run()
		c.mu.Unlock()
		if err == nil || !errors.Is(err, errExited) {
			break
		}
	}
	return c, err
}

func (c *Cluster) initdb() error {
	pwfile := filepath.Join(c.dir, "pwfile")
	if err := c.writeFile(pwfile, []byte(c.password+"\n"), 0o600); err != nil {
		return err
	}
	defer os.Remove(pwfile)
	ctx, cancel := context.WithTimeout(context.Background(), initdbTimeout)
	defer cancel()
	cmd := exec.Command(c.bins.Initdb,
		"--pgdata", c.dataDir, "--username", AdminUser, "--pwfile", pwfile,
		"--auth", "scram-sha-256", "--encoding", "UTF8", "--no-locale", "--no-sync")
	if err := c.runBounded(ctx, cmd); err != nil {
		return fmt.Errorf("pgcluster: initdb: %w (output in %s)", err, c.logPath)
	}
	return nil
}

// runBounded runs a short-lived command with the cluster's identity, output
// into the log, killing its process group (initdb's children too) when ctx
// ends.
func (c *Cluster) runBounded(ctx context.Context, cmd *exec.Cmd) error {
	log, err := os.OpenFile(c.logPath, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	}
	defer log.Close()
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Dir, cmd.Env = c.dir, c.env()
	cmd.SysProcAttr = c.sysProcAttr()
	p, err := procgroup.Start(cmd)
	if err != nil {
		return err
	}
	select {
	case <-p.Exited():
		return p.Err()
	case <-ctx.Done():
		p.Stop(syscall.SIGKILL, 0)
		return ctx.Err()
	}
}

// writeHBA replaces initdb's pg_hba.conf: passwords only; with TLS, TCP
// without TLS is refused.
func (c *Cluster) writeHBA(tls bool) error {
	hba := "# written by pgcluster\nlocal all all scram-sha-256\n"
	if tls {
		hba += "hostssl all all 127.0.0.1/32 scram-sha-256\nhostnossl all all 0.0.0.0/0 reject\n"
	} else {
		hba += "host all all 127.0.0.1/32 scram-sha-256\n"
	}
	return c.writeFile(filepath.Join(c.dataDir, "pg_hba.conf"), []byte(hba), 0o600)
}

// writeTLS writes the server's certificate, key and CA. postgres wants the
// key owned by the server's user and unreadable by others.
func (c *Cluster) writeTLS(t *TLS) error {
	if len(t.CertPEM) == 0 || len(t.KeyPEM) == 0 || len(t.CAPEM) == 0 {
		return errors.New("pgcluster: TLS needs a certificate, its key and its CA")
	}
	dir := filepath.Join(c.dir, "tls")
	if err := c.mkdir(dir); err != nil {
		return err
	}
	c.certPath, c.keyPath, c.caPath = filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key"), filepath.Join(dir, "ca.crt")
	for p, b := range map[string][]byte{c.certPath: t.CertPEM, c.keyPath: t.KeyPEM, c.caPath: t.CAPEM} {
		if err := c.writeFile(p, b, 0o600); err != nil {
			return err
		}
	}
	// The CA is for clients, which may run as another user than the server.
	return os.Chmod(c.caPath, 0o644)
}

// run starts postgres on c.port and waits until it answers. c.mu is held.
func (c *Cluster) run() error {
	log, err := os.OpenFile(c.logPath, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	}
	defer log.Close() // the child has its own descriptor
	args := []string{
		"-D", c.dataDir,
		"-c", "listen_addresses=" + Host,
		"-c", "port=" + strconv.Itoa(c.port),
		"-c", "unix_socket_directories=" + c.sockDir,
		// Speed: durable against a killed server, not a crashed machine.
		"-c", "fsync=off",
		"-c", "full_page_writes=off",
		"-c", "shared_buffers=32MB",
	}
	if c.caPath != "" {
		args = append(args, "-c", "ssl=on", "-c", "ssl_cert_file="+c.certPath, "-c", "ssl_key_file="+c.keyPath)
	}
	for _, s := range c.settings {
		args = append(args, "-c", s)
	}
	cmd := exec.Command(c.bins.Postgres, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Dir, cmd.Env = c.dir, c.env()
	cmd.SysProcAttr = c.sysProcAttr()
	// If this process dies without its cleanups (killed, a test -timeout), the
	// kernel kills the postmaster, and its backends notice and exit.
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	p, err := procgroup.Start(cmd)
	if err != nil {
		return fmt.Errorf("pgcluster: starting %s: %w", c.bins.Postgres, err)
	}
	s := &server{cmd: cmd, proc: p}
	if err := c.waitReady(s); err != nil {
		_ = s.stop(false)
		return fmt.Errorf("%w (port %d, log in %s)", err, c.port, c.logPath)
	}
	c.srv = s
	return nil
}

var errExited = errors.New("pgcluster: postgres exited before it was ready")

// waitReady connects as the superuser until the server answers, it exits or
// readyTimeout passes. The data directory it reports proves that the answer
// came from this server, not another one that holds the port.
func (c *Cluster) waitReady(s *server) error {
	deadline := time.Now().Add(readyTimeout)
	for {
		err := c.ping()
		if err == nil {
			return nil
		}
		select {
		case <-s.proc.Exited():
			return errExited
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pgcluster: postgres did not accept connections within %s: %w", readyTimeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *Cluster) ping() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.AdminDSN())
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	var dataDir string
	if err := conn.QueryRow(ctx, "SHOW data_directory").Scan(&dataDir); err != nil {
		return err
	}
	if dataDir != c.dataDir && !sameFile(dataDir, c.dataDir) {
		return fmt.Errorf("pgcluster: port %d is served by another cluster (%s)", c.port, dataDir)
	}
	return nil
}

func sameFile(a, b string) bool {
	sa, err1 := os.Stat(a)
	sb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(sa, sb)
}

// server is one postmaster process, started by procgroup (which keeps the
// thread that started it, so that the parent-death signal holds).
type server struct {
	cmd  *exec.Cmd
	proc *procgroup.Process
}

// stop asks for a fast shutdown (SIGINT) when graceful, which the
// postmaster completes after all its children exited; otherwise, or when that
// takes too long, it kills the postmaster and every child.
func (s *server) stop(graceful bool) error {
	if graceful {
		_ = s.cmd.Process.Signal(os.Interrupt)
		select {
		case <-s.proc.Exited():
			return nil
		case <-time.After(stopTimeout):
		}
	}
	return s.kill()
}

// kill kills the postmaster and its children with SIGKILL and waits for all
// of them. PostgreSQL gives every child a session of its own, so a
// process-group kill would miss them; and the next postmaster refuses to
// start while an old child still holds the shared memory.
func (s *server) kill() error {
	// Stopped, the postmaster can neither fork nor reap: the children listed
	// next keep their pids (as zombies at worst) until they are signalled.
	// Process.Signal fails rather than hit a reused pid once it is reaped.
	_ = s.cmd.Process.Signal(syscall.SIGSTOP)
	kids := children(s.cmd.Process.Pid)
	for _, k := range kids {
		_ = syscall.Kill(k, syscall.SIGKILL)
	}
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	deadline := time.After(killTimeout)
	select {
	case <-s.proc.Exited():
	case <-deadline:
		return fmt.Errorf("pgcluster: postgres (pid %d) still runs %s after SIGKILL", s.cmd.Process.Pid, killTimeout)
	}
	for _, k := range kids {
		for alive(k) {
			select {
			case <-deadline:
				return fmt.Errorf("pgcluster: postgres child (pid %d) still runs %s after SIGKILL", k, killTimeout)
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	return nil
}

// procStat is what children and alive read from /proc/PID/stat.
type procStat struct {
	state byte
	ppid  int
}

func readStat(pid string) (procStat, bool) {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return procStat{}, false
	}
	// pid (comm) state ppid ...; comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 || len(f[0]) != 1 {
		return procStat{}, false
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return procStat{}, false
	}
	return procStat{state: f[0][0], ppid: ppid}, true
}

// children lists the processes whose parent is pid.
func children(pid int) []int {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var kids []int
	for _, p := range stats {
		name := filepath.Base(filepath.Dir(p))
		if st, ok := readStat(name); ok && st.ppid == pid {
			if k, err := strconv.Atoi(name); err == nil {
				kids = append(kids, k)
			}
		}
	}
	return kids
}

// alive reports whether pid is a process that is neither gone nor a zombie
// (which holds no memory or socket; an orphan one waits for a reaper).
func alive(pid int) bool {
	st, ok := readStat(strconv.Itoa(pid))
	return ok && st.state != 'Z' && st.state != 'X'
}
