// Package pgtest runs throwaway PostgreSQL clusters for tests: initdb into a
// temporary directory, postgres on a free port of 127.0.0.1 with its unix
// socket in that directory, password (SCRAM) authentication only, and
// optionally TLS with a certificate from a test CA. The cluster is stopped
// and its directory removed when the test ends, whether it passed, failed or
// panicked.
//
// Typical use, one cluster per test:
//
//	c := pgtest.Start(t)
//	dsn := c.CreateDatabase(t, "archive", "archivist", "s3cret")
//	conn, err := pgx.Connect(ctx, dsn)
//
// or one cluster per test binary, a fresh database per test (initdb costs a
// second or two):
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.SharedMain(m).Run()) }
//	func TestX(t *testing.T) { db := pgtest.Shared(t).NewDatabase(t) ... }
//
// PostgreSQL refuses to run as root: when the tests run as root, initdb and
// postgres run as the unprivileged account "postgres" (created by Debian's
// postgresql package) or, failing that, "nobody". Without the binaries (on
// PATH or under /usr/lib/postgresql/*/bin) a test is skipped, loudly, unless
// CI is set, where it fails.
//
// The fsync is off: data survives the server being killed (Kill), not the
// machine crashing. Linux only (parent-death signal, process credentials).
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

const (
	// Host is the only address the servers listen on.
	Host = "127.0.0.1"
	// AdminUser is the superuser role of every cluster.
	AdminUser = "postgres"
	// adminDatabase is the database the superuser connects to.
	adminDatabase = "postgres"

	// sqlTimeout bounds each administrative statement batch.
	sqlTimeout = 30 * time.Second
	// maxLog is how much of the server's log a failure report quotes; the
	// whole log stays in its file.
	maxLog = 64 << 10
)

var (
	// ErrShared is returned by Stop, Kill and Restart on the shared cluster:
	// the other tests of the binary use it too.
	ErrShared = errors.New("pgtest: the shared cluster cannot be stopped or restarted; use Start for a cluster of your own")
	// ErrStopped is returned by the administrative helpers while the server
	// is stopped.
	ErrStopped = errors.New("pgtest: the server is stopped")
)

// Option changes how a cluster is set up.
type Option func(*options)

type options struct {
	tls      bool
	settings []string // "name=value", passed as -c
	err      error
}

// WithTLS runs the server with ssl=on and a certificate for localhost and
// 127.0.0.1 issued by a test CA (see CAPath), and refuses TCP connections
// without TLS, so that a client that silently falls back to plain text fails.
// DSNs then carry sslmode=verify-full and sslrootcert.
func WithTLS() Option { return func(o *options) { o.tls = true } }

// reserved are the settings the cluster depends on.
var reserved = map[string]bool{
	"listen_addresses": true, "port": true, "unix_socket_directories": true,
	"ssl": true, "ssl_cert_file": true, "ssl_key_file": true, "hba_file": true,
	"data_directory": true, "config_file": true,
}

var settingName = regexp.MustCompile(`^[a-z_][a-z0-9_.]*$`)

// WithSetting passes a server setting (postgres -c name=value), such as
// max_connections or log_statement. The settings the cluster itself depends
// on (listen address, port, socket directory, TLS files, configuration files)
// are refused.
func WithSetting(name, value string) Option {
	return func(o *options) {
		switch {
		case !settingName.MatchString(name):
			o.err = fmt.Errorf("pgtest: setting name %q is not valid", name)
		case reserved[name]:
			o.err = fmt.Errorf("pgtest: setting %s is managed by pgtest", name)
		case strings.ContainsRune(value, 0):
			o.err = fmt.Errorf("pgtest: setting %s has a NUL byte", name)
		default:
			o.settings = append(o.settings, name+"="+value)
		}
	}
}

// Cluster is a running (or deliberately stopped) throwaway PostgreSQL
// cluster. Its methods are safe for concurrent use.
type Cluster struct {
	bins     binaries
	acct     *account // nil: run as the current user
	dir      string   // the temporary directory; everything but the log
	dataDir  string
	sockDir  string
	logPath  string
	port     int
	password string // of AdminUser
	caPath   string // "" without TLS
	certPath string
	keyPath  string
	settings []string
	shared   bool
	names    atomic.Int64 // for NewDatabase

	mu  sync.Mutex
	srv *server // nil while stopped
}

// Start creates and starts a cluster that lives until the test ends, also
// when it fails or panics: then the server is shut down (fast shutdown, or
// SIGKILL of the postmaster and its children when that takes over 20 s), its
// directory removed, and its log removed too or, when the test failed or
// panicked, kept with its path and tail logged. If the test binary itself is
// killed, the kernel kills the postmaster (parent-death signal) and only the
// directory stays behind.
func Start(t testing.TB, opts ...Option) *Cluster {
	t.Helper()
	o := collect(opts)
	if o.err != nil {
		t.Fatal(o.err)
	}
	bins := requireBinaries(t)
	c, err := newCluster(t, bins, o)
	if c != nil {
		t.Cleanup(func() { c.close(t.Failed() || aborted(t), t.Logf) })
	}
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// aborted reports whether the test is ending in a panic or runtime.Goexit
// other than a skip: testing runs the cleanups of a panicking test before it
// marks the test failed, so t.Failed alone would discard the log of a panic.
func aborted(t testing.TB) bool {
	if t.Skipped() {
		return false
	}
	var pcs [64]uintptr
	frames := runtime.CallersFrames(pcs[:runtime.Callers(2, pcs[:])])
	for {
		f, more := frames.Next()
		if f.Function == "runtime.gopanic" || f.Function == "runtime.Goexit" {
			return true
		}
		if !more {
			return false
		}
	}
}

func collect(opts []Option) *options {
	o := &options{}
	for _, opt := range opts {
		opt(o)
	}
	return o
}

// Port is the TCP port on Host. It stays the same across Stop and Restart.
func (c *Cluster) Port() int { return c.port }

// Addr is Host:Port.
func (c *Cluster) Addr() string { return net.JoinHostPort(Host, strconv.Itoa(c.port)) }

// SocketDir is the directory of the server's unix socket.
func (c *Cluster) SocketDir() string { return c.sockDir }

// LogPath is the server's log file (initdb's and postgres's output).
func (c *Cluster) LogPath() string { return c.logPath }

// CAPath is the PEM file of the CA that issued the server certificate, for
// sslrootcert or ARCHIVE_DB_CA_PATH; "" without WithTLS.
func (c *Cluster) CAPath() string { return c.caPath }

// AdminPassword is the password of AdminUser.
func (c *Cluster) AdminPassword() string { return c.password }

// AdminDSN is a postgres:// URL for the superuser AdminUser on the database
// "postgres".
func (c *Cluster) AdminDSN() string { return c.DSN(AdminUser, c.password, adminDatabase) }

// URL is the postgres:// URL for user and password (omitted when empty) on
// database, over TCP to Host:Port, with sslmode=disable, or with WithTLS
// sslmode=verify-full and sslrootcert=CAPath. Callers may edit it, for
// instance to drop sslrootcert and pass the CA another way.
func (c *Cluster) URL(user, password, database string) *url.URL {
	u := &url.URL{Scheme: "postgres", Host: c.Addr(), Path: "/" + database}
	if password == "" {
		u.User = url.User(user)
	} else {
		u.User = url.UserPassword(user, password)
	}
	q := url.Values{}
	if c.caPath != "" {
		q.Set("sslmode", "verify-full")
		q.Set("sslrootcert", c.caPath)
	} else {
		q.Set("sslmode", "disable")
	}
	u.RawQuery = q.Encode()
	return u
}

// DSN is URL as a string.
func (c *Cluster) DSN(user, password, database string) string {
	return c.URL(user, password, database).String()
}

// Database is a database created for a test and its owner, a login role.
type Database struct {
	Name     string
	Owner    string
	Password string
	// DSN connects as Owner to Name (see Cluster.DSN).
	DSN string
}

// CreateDatabase creates the login role owner with password (or sets its
// password when the role exists) and the database name owned by it, and
// returns the DSN of owner on name. Any name and password without a NUL byte
// work; they are quoted, never interpolated. On the shared cluster the
// database is dropped when the test ends.
func (c *Cluster) CreateDatabase(t testing.TB, name, owner, password string) string {
	t.Helper()
	if err := c.createDatabase(name, owner, password); err != nil {
		t.Fatal(err)
	}
	if c.shared {
		t.Cleanup(func() {
			if err := c.dropDatabase(name); err != nil {
				t.Logf("pgtest: dropping database %s: %v", name, err)
			}
		})
	}
	return c.DSN(owner, password, name)
}

// NewDatabase creates a database with a fresh owner role and random password,
// with names unique in the cluster (see CreateDatabase).
func (c *Cluster) NewDatabase(t testing.TB) Database {
	t.Helper()
	n := c.names.Add(1)
	d := Database{
		Name:     fmt.Sprintf("pgtest_db_%d", n),
		Owner:    fmt.Sprintf("pgtest_role_%d", n),
		Password: randomHex(t, 16),
	}
	d.DSN = c.CreateDatabase(t, d.Name, d.Owner, d.Password)
	return d
}

func (c *Cluster) createDatabase(name, owner, password string) error {
	for _, s := range []string{name, owner, password} {
		if strings.ContainsRune(s, 0) {
			return errors.New("pgtest: names and passwords cannot contain a NUL byte")
		}
	}
	if name == "" || owner == "" {
		return errors.New("pgtest: database and owner names are required")
	}
	return c.admin(func(ctx context.Context, conn *pgx.Conn) error {
		var exists bool
		if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", owner).Scan(&exists); err != nil {
			return err
		}
		role := pgx.Identifier{owner}.Sanitize()
		// Utility statements take no parameters: the password is a quoted
		// literal (standard_conforming_strings is on, so only ' needs doubling).
		stmt := "CREATE ROLE " + role + " LOGIN PASSWORD " + quoteLiteral(password)
		if exists {
			stmt = "ALTER ROLE " + role + " LOGIN PASSWORD " + quoteLiteral(password)
		}
		if _, err := conn.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("pgtest: role %s: %w", owner, err)
		}
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+" OWNER "+role); err != nil {
			return fmt.Errorf("pgtest: database %s: %w", name, err)
		}
		return nil
	})
}

func (c *Cluster) dropDatabase(name string) error {
	return c.admin(func(ctx context.Context, conn *pgx.Conn) error {
		_, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
		return err
	})
}

// admin runs f on a superuser connection.
func (c *Cluster) admin(f func(context.Context, *pgx.Conn) error) error {
	c.mu.Lock()
	running := c.srv != nil
	c.mu.Unlock()
	if !running {
		return ErrStopped
	}
	ctx, cancel := context.WithTimeout(context.Background(), sqlTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.AdminDSN())
	if err != nil {
		return fmt.Errorf("pgtest: connecting as %s: %w", AdminUser, err)
	}
	defer conn.Close(context.Background())
	return f(ctx, conn)
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// Stop shuts the server down (fast shutdown: clients are disconnected,
// committed data kept), as a database outage seen by clients. Stopping a
// stopped cluster does nothing.
func (c *Cluster) Stop() error { return c.halt(true) }

// Kill kills the postmaster and all its children with SIGKILL, as a crash,
// and returns once they are gone: Restart then runs crash recovery.
// Committed transactions survive (fsync is off, synchronous_commit is not).
func (c *Cluster) Kill() error { return c.halt(false) }

func (c *Cluster) halt(graceful bool) error {
	if c.shared {
		return ErrShared
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.srv == nil {
		return nil
	}
	err := c.srv.stop(graceful)
	c.srv = nil
	return err
}

// Restart starts the server again on the same port with the same data,
// stopping it first when it runs, and waits until it accepts connections.
// It fails when another process took the port meanwhile.
func (c *Cluster) Restart() error {
	if c.shared {
		return ErrShared
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.srv != nil {
		err := c.srv.stop(true)
		c.srv = nil
		if err != nil {
			return err
		}
	}
	return c.run()
}

// close stops the server and removes the directory. When failed, the log is
// kept and reported through logf; otherwise it is removed.
func (c *Cluster) close(failed bool, logf func(string, ...any)) {
	c.mu.Lock()
	if c.srv != nil {
		if err := c.srv.stop(true); err != nil {
			logf("%v", err)
			failed = true
		}
		c.srv = nil
	}
	c.mu.Unlock()
	if err := os.RemoveAll(c.dir); err != nil {
		logf("pgtest: removing %s: %v", c.dir, err)
	}
	if c.logPath == "" {
		return
	}
	if failed {
		logf("pgtest: postgres log kept in %s; last %d KiB:\n%s", c.logPath, maxLog>>10, tail(c.logPath))
		return
	}
	os.Remove(c.logPath)
}

// tail returns the last maxLog bytes of the file at path.
func tail(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(log unreadable: %v)", err)
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > maxLog {
		_, _ = f.Seek(-maxLog, io.SeekEnd)
	}
	b, _ := io.ReadAll(f)
	return string(b)
}

func randomHex(t testing.TB, n int) string {
	s, err := randomString(n)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func randomString(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("pgtest: %w", err)
	}
	return hex.EncodeToString(b), nil
}
