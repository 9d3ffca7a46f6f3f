// Package pgtest runs throwaway PostgreSQL clusters for tests: the clusters
// of internal/pgcluster (initdb into a temporary directory, postgres on a
// free port of 127.0.0.1 with its unix socket in that directory, password
// (SCRAM) authentication only, optionally TLS with a certificate from a test
// CA), tied to a test: the cluster is stopped and its directory removed when
// the test ends, whether it passed, failed or panicked.
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
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ca-a2a/ca-a2a/internal/pgcluster"
	"github.com/ca-a2a/ca-a2a/internal/testutil/ci"
	"github.com/ca-a2a/ca-a2a/internal/testutil/pki"
)

const (
	// Host is the only address the servers listen on.
	Host = pgcluster.Host
	// AdminUser is the superuser role of every cluster.
	AdminUser = pgcluster.AdminUser
)

var (
	// ErrShared is returned by Stop, Kill and Restart on the shared cluster:
	// the other tests of the binary use it too.
	ErrShared = errors.New("pgtest: the shared cluster cannot be stopped or restarted; use Start for a cluster of your own")
	// ErrStopped is returned by the administrative helpers while the server
	// is stopped.
	ErrStopped = pgcluster.ErrStopped
)

// findBinaries is pgcluster.FindBinaries; a variable so that the tests can
// hide the installation.
var findBinaries = pgcluster.FindBinaries

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

// WithSetting passes a server setting (postgres -c name=value), such as
// max_connections or log_statement. The settings the cluster itself depends
// on (listen address, port, socket directory, TLS files, configuration files)
// are refused.
func WithSetting(name, value string) Option {
	return func(o *options) {
		if err := pgcluster.CheckSetting(name, value); err != nil {
			o.err = err
			return
		}
		o.settings = append(o.settings, name+"="+value)
	}
}

// Cluster is a running (or deliberately stopped) throwaway PostgreSQL
// cluster (pgcluster.Cluster) that belongs to a test or, shared, to a test
// binary. Its methods are safe for concurrent use.
type Cluster struct {
	*pgcluster.Cluster
	shared bool
	names  atomic.Int64 // for NewDatabase
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

// newCluster starts a pgcluster with the test's options; TLS material comes
// from a fresh test CA.
func newCluster(t testing.TB, bins pgcluster.Binaries, o *options) (*Cluster, error) {
	t.Helper()
	po := pgcluster.Options{Prefix: "pgtest", Settings: o.settings}
	if o.tls {
		ca := pki.NewCA(t, "pgtest CA")
		leaf := ca.Issue(t, "pgtest", pki.DNS("localhost"), func(x *x509.Certificate) {
			x.IPAddresses = []net.IP{net.ParseIP(Host)}
		})
		po.TLS = &pgcluster.TLS{CertPEM: leaf.CertPEM, KeyPEM: leaf.KeyPEM, CAPEM: ca.PEM}
	}
	pc, err := pgcluster.Start(bins, po)
	if pc == nil {
		return nil, err
	}
	return &Cluster{Cluster: pc}, err
}

// close stops the cluster and removes it. When failed, the log is kept and
// reported through logf with its tail; otherwise it is removed.
func (c *Cluster) close(failed bool, logf func(string, ...any)) {
	// The log is kept until we know whether the shutdown went well.
	if err := c.Cluster.Close(true); err != nil {
		logf("%v", err)
		failed = true
	}
	if c.LogPath() == "" {
		return
	}
	if failed {
		logf("pgtest: postgres log kept in %s; last %d KiB:\n%s", c.LogPath(), pgcluster.MaxLog>>10, c.Tail())
		return
	}
	os.Remove(c.LogPath())
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

// requireBinaries finds the server programs, or skips the test (outside CI)
// or fails it (CI).
func requireBinaries(t testing.TB) pgcluster.Binaries {
	t.Helper()
	b, err := findBinaries()
	if err == nil {
		return b
	}
	ci.Required(t, err.Error()+" (apt-get install postgresql); the PostgreSQL code paths are not tested")
	return pgcluster.Binaries{}
}

// Database is a database created for a test and its owner, a login role.
type Database struct {
	Name     string
	Owner    string
	Password string
	// DSN connects as Owner to Name (see Cluster.DSN).
	DSN string
}

// Pool returns a pool connected to d as its owner, closed when the test
// ends (before the database is dropped).
func (d Database) Pool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), d.DSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// CreateDatabase creates the login role owner with password (or sets its
// password when the role exists) and the database name owned by it, and
// returns the DSN of owner on name. Any name and password without a NUL byte
// work; they are quoted, never interpolated. On the shared cluster the
// database is dropped when the test ends.
func (c *Cluster) CreateDatabase(t testing.TB, name, owner, password string) string {
	t.Helper()
	if err := c.Cluster.CreateDatabase(name, owner, password); err != nil {
		t.Fatal(err)
	}
	if c.shared {
		t.Cleanup(func() {
			if err := c.DropDatabase(name); err != nil {
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
	password, err := pgcluster.RandomPassword(16)
	if err != nil {
		t.Fatal(err)
	}
	d := Database{
		Name:     fmt.Sprintf("pgtest_db_%d", n),
		Owner:    fmt.Sprintf("pgtest_role_%d", n),
		Password: password,
	}
	d.DSN = c.CreateDatabase(t, d.Name, d.Owner, d.Password)
	return d
}

// Stop shuts the server down (fast shutdown: clients are disconnected,
// committed data kept), as a database outage seen by clients. Stopping a
// stopped cluster does nothing. The shared cluster refuses (ErrShared).
func (c *Cluster) Stop() error {
	if c.shared {
		return ErrShared
	}
	return c.Cluster.Stop()
}

// Kill kills the postmaster and all its children with SIGKILL, as a crash,
// and returns once they are gone: Restart then runs crash recovery.
// Committed transactions survive (fsync is off, synchronous_commit is not).
// The shared cluster refuses (ErrShared).
func (c *Cluster) Kill() error {
	if c.shared {
		return ErrShared
	}
	return c.Cluster.Kill()
}

// Restart starts the server again on the same port with the same data,
// stopping it first when it runs, and waits until it accepts connections.
// It fails when another process took the port meanwhile. The shared
// cluster refuses (ErrShared).
func (c *Cluster) Restart() error {
	if c.shared {
		return ErrShared
	}
	return c.Cluster.Restart()
}
