// Package pgcluster runs a throwaway PostgreSQL cluster on loopback: initdb
// into a fresh temporary directory, postgres on a free port of 127.0.0.1 with
// its unix socket in that directory, password (SCRAM) authentication only,
// and optionally TLS with a certificate the caller supplies. Close stops the
// server and removes the directory.
//
// The tests use it through internal/testutil/pgtest, which ties a cluster to
// a test's lifetime; the local runner (dev/localrun) uses it for
// `make demo ARCHIVE=postgres`.
//
// PostgreSQL refuses to run as root: when this process runs as root, initdb
// and postgres run as the unprivileged account "postgres" (created by
// Debian's postgresql package) or, failing that, "nobody". FindBinaries looks
// for the server programs on PATH and under /usr/lib/postgresql/*/bin.
//
// The fsync is off: data survives the server being killed (Kill), not the
// machine crashing. Linux only (parent-death signal, process credentials).
package pgcluster

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
	"strconv"
	"strings"
	"sync"
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
	// MaxLog is how much of the server's log Tail returns; the whole log
	// stays in its file.
	MaxLog = 64 << 10
)

// ErrStopped is returned by the administrative helpers while the server is
// stopped.
var ErrStopped = errors.New("pgcluster: the server is stopped")

// TLS is the server's certificate material (PEM). The cluster then runs
// with ssl=on and refuses TCP connections without TLS, so that a client
// that silently falls back to plain text fails.
type TLS struct {
	CertPEM, KeyPEM []byte
	// CAPEM is the CA that issued CertPEM, written beside it for clients
	// (CAPath).
	CAPEM []byte
}

// Options set a cluster up. The zero value is a plain-text cluster in
// os.TempDir().
type Options struct {
	// TLS, when set, serves TLS only.
	TLS *TLS
	// Settings are server settings, "name=value" (postgres -c); see
	// CheckSetting.
	Settings []string
	// Prefix names the temporary directory (Prefix-XXXX); "pgcluster" when
	// empty.
	Prefix string
	// LogPath is where initdb and postgres write their output. Empty: a
	// temporary file beside the directory, removed by Close unless asked to
	// keep it. A given path is truncated, and kept.
	LogPath string
}

// reserved are the settings the cluster depends on.
var reserved = map[string]bool{
	"listen_addresses": true, "port": true, "unix_socket_directories": true,
	"ssl": true, "ssl_cert_file": true, "ssl_key_file": true, "hba_file": true,
	"data_directory": true, "config_file": true,
}

var settingName = regexp.MustCompile(`^[a-z_][a-z0-9_.]*$`)

// CheckSetting refuses a server setting name=value that is malformed or
// that the cluster manages itself (listen address, port, socket directory,
// TLS files, configuration files).
func CheckSetting(name, value string) error {
	switch {
	case !settingName.MatchString(name):
		return fmt.Errorf("pgcluster: setting name %q is not valid", name)
	case reserved[name]:
		return fmt.Errorf("pgcluster: setting %s is managed by pgcluster", name)
	case strings.ContainsRune(value, 0):
		return fmt.Errorf("pgcluster: setting %s has a NUL byte", name)
	}
	return nil
}

// Cluster is a running (or deliberately stopped) throwaway PostgreSQL
// cluster. Its methods are safe for concurrent use.
type Cluster struct {
	bins     Binaries
	acct     *account // nil: run as the current user
	dir      string   // the temporary directory; everything but the log
	dataDir  string
	sockDir  string
	logPath  string
	ownLog   bool // logPath was created here, and is removed by Close
	port     int
	password string // of AdminUser
	caPath   string // "" without TLS
	certPath string
	keyPath  string
	settings []string

	mu  sync.Mutex
	srv *server // nil while stopped
}

// Start creates a cluster with bins (FindBinaries) and starts it. On an
// error it returns the cluster too when there is something to clean up:
// call Close on it.
func Start(bins Binaries, o Options) (*Cluster, error) {
	for _, s := range o.Settings {
		name, value, _ := strings.Cut(s, "=")
		if err := CheckSetting(name, value); err != nil {
			return nil, err
		}
	}
	return newCluster(bins, o)
}

// Port is the TCP port on Host. It stays the same across Stop and Restart.
func (c *Cluster) Port() int { return c.port }

// Addr is Host:Port.
func (c *Cluster) Addr() string { return net.JoinHostPort(Host, strconv.Itoa(c.port)) }

// Dir is the cluster's temporary directory (data, socket, TLS files).
func (c *Cluster) Dir() string { return c.dir }

// SocketDir is the directory of the server's unix socket.
func (c *Cluster) SocketDir() string { return c.sockDir }

// LogPath is the server's log file (initdb's and postgres's output).
func (c *Cluster) LogPath() string { return c.logPath }

// CAPath is the PEM file of the CA that issued the server certificate, for
// sslrootcert or ARCHIVE_DB_CA_PATH; "" without TLS.
func (c *Cluster) CAPath() string { return c.caPath }

// AdminPassword is the password of AdminUser.
func (c *Cluster) AdminPassword() string { return c.password }

// Account is the account the server runs as when this process is root
// ("postgres" or "nobody"), and "" when it runs as the current user.
func (c *Cluster) Account() (name string, uid int) {
	if c.acct == nil {
		return "", os.Geteuid()
	}
	return c.acct.name, int(c.acct.uid)
}

// AdminDSN is a postgres:// URL for the superuser AdminUser on the database
// "postgres".
func (c *Cluster) AdminDSN() string { return c.DSN(AdminUser, c.password, adminDatabase) }

// URL is the postgres:// URL for user and password (omitted when empty) on
// database, over TCP to Host:Port, with sslmode=disable, or with TLS
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

// CreateDatabase creates the login role owner with password (or sets its
// password when the role exists) and the database name owned by it. Any
// name and password without a NUL byte work; they are quoted, never
// interpolated.
func (c *Cluster) CreateDatabase(name, owner, password string) error {
	for _, s := range []string{name, owner, password} {
		if strings.ContainsRune(s, 0) {
			return errors.New("pgcluster: names and passwords cannot contain a NUL byte")
		}
	}
	if name == "" || owner == "" {
		return errors.New("pgcluster: database and owner names are required")
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
			return fmt.Errorf("pgcluster: role %s: %w", owner, err)
		}
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+" OWNER "+role); err != nil {
			return fmt.Errorf("pgcluster: database %s: %w", name, err)
		}
		return nil
	})
}

// DropDatabase drops the database name, disconnecting its clients.
func (c *Cluster) DropDatabase(name string) error {
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
		return fmt.Errorf("pgcluster: connecting as %s: %w", AdminUser, err)
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

// PID is the postmaster's process id, 0 while stopped.
func (c *Cluster) PID() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.srv == nil {
		return 0
	}
	return c.srv.cmd.Process.Pid
}

// Processes lists the postmaster and its children (backends, checkpointer,
// walwriter...), each in a session of its own; nil while stopped.
func (c *Cluster) Processes() []int {
	pid := c.PID()
	if pid == 0 {
		return nil
	}
	return append([]int{pid}, children(pid)...)
}

// Alive reports whether pid is a process that is neither gone nor a zombie.
func Alive(pid int) bool { return alive(pid) }

// Close stops the server (fast shutdown, SIGKILL of the postmaster and its
// children when that takes over 20 s) and removes the directory; the log too
// unless keepLog, or unless Options.LogPath named it. Closing twice is
// harmless.
func (c *Cluster) Close(keepLog bool) error {
	var errs []error
	c.mu.Lock()
	if c.srv != nil {
		errs = append(errs, c.srv.stop(true))
		c.srv = nil
	}
	c.mu.Unlock()
	if err := os.RemoveAll(c.dir); err != nil {
		errs = append(errs, fmt.Errorf("pgcluster: removing %s: %w", c.dir, err))
	}
	if c.ownLog && !keepLog && c.logPath != "" {
		os.Remove(c.logPath)
	}
	return errors.Join(errs...)
}

// Tail returns the last MaxLog bytes of the server's log.
func (c *Cluster) Tail() string { return tail(c.logPath) }

// tail returns the last MaxLog bytes of the file at path.
func tail(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(log unreadable: %v)", err)
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > MaxLog {
		_, _ = f.Seek(-MaxLog, io.SeekEnd)
	}
	b, _ := io.ReadAll(f)
	return string(b)
}

// RandomPassword returns 2n random hex digits.
func RandomPassword(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("pgcluster: %w", err)
	}
	return hex.EncodeToString(b), nil
}
