package pgcluster

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"

	"github.com/ca-a2a/ca-a2a/internal/testutil/ci"
)

// The cluster's life as a test sees it (stop, kill, restart, TLS, failure
// cleanup, the shared cluster) is tested in internal/testutil/pgtest, which
// wraps this package; here are what only this package can reach (the root
// accounts, the binary search) and what only its non-test users rely on.

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// binaries finds the server programs or skips (fails with CI set), as
// pgtest does; pgtest itself cannot be imported here (it imports this).
func binaries(t *testing.T) Binaries {
	t.Helper()
	b, err := FindBinaries()
	if err == nil {
		return b
	}
	ci.Required(t, err.Error()+" (apt-get install postgresql); the PostgreSQL code paths are not tested")
	return Binaries{}
}

func start(t *testing.T, o Options) *Cluster {
	t.Helper()
	c, err := Start(binaries(t), o)
	if c != nil {
		t.Cleanup(func() {
			if err := c.Close(false); err != nil {
				t.Error(err)
			}
		})
	}
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func ping(t *testing.T, dsn string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	return conn.Close(ctx)
}

// A log path of the caller's is written and kept; a database created with
// CreateDatabase answers its owner's password; Close removes the rest.
func TestStartWithLogPathAndClose(t *testing.T) {
	logPath := filepath.Join(t.TempDir(), "postgres.log")
	c, err := Start(binaries(t), Options{Prefix: "pgcluster-test", LogPath: logPath})
	if err != nil {
		if c != nil {
			c.Close(true)
		}
		t.Fatal(err)
	}
	if !strings.HasPrefix(filepath.Base(c.Dir()), "pgcluster-test-") {
		t.Errorf("directory %s", c.Dir())
	}
	if err := c.CreateDatabase("archive", "archivist", "pw"); err != nil {
		t.Fatal(err)
	}
	if err := ping(t, c.DSN("archivist", "pw", "archive")); err != nil {
		t.Fatal(err)
	}
	if err := ping(t, c.DSN("archivist", "wrong", "archive")); err == nil {
		t.Error("a wrong password was accepted")
	}
	pids := c.Processes()
	if len(pids) < 2 || pids[0] != c.PID() {
		t.Fatalf("processes %v, postmaster %d", pids, c.PID())
	}
	if err := c.Close(false); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(false); err != nil {
		t.Fatalf("second close: %v", err)
	}
	for _, p := range pids {
		if Alive(p) {
			t.Errorf("process %d survived Close", p)
		}
	}
	if _, err := os.Stat(c.Dir()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("directory left: %v", err)
	}
	if b, err := os.ReadFile(logPath); err != nil || !strings.Contains(string(b), "database system is ready") {
		t.Errorf("log at the given path: %v\n%s", err, b)
	}
	if err := c.CreateDatabase("x", "y", "z"); !errors.Is(err, ErrStopped) {
		t.Errorf("CreateDatabase after Close: %v", err)
	}
}

func TestStartRefusals(t *testing.T) {
	bins := binaries(t)
	for name, o := range map[string]Options{
		"reserved setting":   {Settings: []string{"port=5432"}},
		"malformed setting":  {Settings: []string{"Bad Name=1"}},
		"TLS without its CA": {TLS: &TLS{CertPEM: []byte("x"), KeyPEM: []byte("y")}},
	} {
		t.Run(name, func(t *testing.T) {
			c, err := Start(bins, o)
			if c != nil {
				t.Cleanup(func() { c.Close(false) })
			}
			if err == nil {
				t.Fatal("started")
			}
		})
	}
}

// As root, without the postgres account, the server runs as nobody; and a
// temporary directory that account cannot reach is refused clearly.
func TestRootAccounts(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("only root picks an account to run the server as")
	}
	bins := binaries(t)
	saved := accounts
	defer func() { accounts = saved }()

	accounts = []string{"pgcluster-no-such-user", "nobody"}
	c := start(t, Options{})
	if name, _ := c.Account(); name != "nobody" {
		t.Fatalf("account %q, want nobody", name)
	}
	if err := c.CreateDatabase("d", "o", "p"); err != nil {
		t.Fatal(err)
	}
	if err := ping(t, c.DSN("o", "p", "d")); err != nil {
		t.Fatal(err)
	}

	accounts = []string{"pgcluster-no-such-user", "root"}
	if c, err := Start(bins, Options{}); err == nil {
		c.Close(false)
		t.Error("no unprivileged account: want a failure")
	}

	accounts = saved
	private := t.TempDir() // 0700, owned by root
	if err := os.Chmod(private, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TMPDIR", private)
	c, err := Start(bins, Options{})
	if c != nil {
		c.Close(false)
	}
	if err == nil || !strings.Contains(err.Error(), "cannot enter") {
		t.Errorf("private TMPDIR: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(private, "pgcluster-*")); len(left) != 0 {
		t.Errorf("left %v", left)
	}
}

func TestFindBinariesPrefersOneInstallation(t *testing.T) {
	// Binaries under the library directory are found without PATH, the
	// newest version first.
	root := t.TempDir()
	for _, v := range []string{"9.6", "15", "13"} {
		d := filepath.Join(root, v, "bin")
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, b := range []string{"initdb", "postgres"} {
			if err := os.WriteFile(filepath.Join(d, b), []byte("#!/bin/sh\n"), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Setenv("PATH", t.TempDir())
	saved := libDirGlob
	libDirGlob = filepath.Join(root, "*", "bin")
	defer func() { libDirGlob = saved }()
	b, err := FindBinaries()
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(root, "15", "bin"); filepath.Dir(b.Initdb) != want || filepath.Dir(b.Postgres) != want {
		t.Errorf("found %+v, want both in %s", b, want)
	}

	libDirGlob = filepath.Join(t.TempDir(), "*", "bin")
	if _, err := FindBinaries(); !errors.Is(err, ErrNoBinaries) {
		t.Errorf("nothing installed: %v", err)
	}
}
