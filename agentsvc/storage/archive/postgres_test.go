package archive_test

// What only the PostgreSQL store does: the configuration it refuses, TLS
// verify-full, the password variable, and an unreachable database at
// start-up and later. The behaviour both engines share is in
// contract_test.go.

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ca-a2a/ca-a2a/agentsvc/storage/archive"
	"github.com/ca-a2a/ca-a2a/internal/testutil/archivetest"
	"github.com/ca-a2a/ca-a2a/internal/testutil/pgtest"
	"github.com/ca-a2a/ca-a2a/internal/testutil/pki"
	"github.com/ca-a2a/ca-a2a/internal/testutil/syncbuf"
	"github.com/ca-a2a/ca-a2a/shared/agentapi"
)

const secret = "Sup3r-s3cret-pw"

func TestPostgresConfig(t *testing.T) {
	ca := filepath.Join(t.TempDir(), "ca.pem")
	tests := []struct {
		name string
		c    archive.Config
		want string // "" valid
	}{
		{"production form", archive.Config{DSN: "postgres://archivist@archive.abc.eu-west-3.rds.amazonaws.com:5432/archive?sslmode=verify-full", Password: secret, CAPath: ca}, ""},
		{"postgresql scheme", archive.Config{DSN: "postgresql://archivist@db.internal/archive", Password: secret}, ""},
		{"sslmode defaults to verify-full", archive.Config{DSN: "postgres://archivist@db.internal/archive", CAPath: ca}, ""},
		{"password in the DSN", archive.Config{DSN: "postgres://archivist:" + secret + "@db.internal/archive"}, ""},
		{"pool and timeout settings", archive.Config{DSN: "postgres://archivist@db.internal/archive?pool_max_conns=4&connect_timeout=3&application_name=archivist"}, ""},
		{"loopback may go without TLS", archive.Config{DSN: "postgres://archivist@127.0.0.1:5432/archive?sslmode=disable"}, ""},
		{"localhost too", archive.Config{DSN: "postgres://archivist@localhost/archive?sslmode=prefer"}, ""},
		{"IPv6 loopback too", archive.Config{DSN: "postgres://archivist@[::1]:5432/archive?sslmode=require"}, ""},
		{"127.0.0.2 is loopback", archive.Config{DSN: "postgres://archivist@127.0.0.2/archive?sslmode=disable"}, ""},

		{"remote without TLS", archive.Config{DSN: "postgres://archivist@db.internal/archive?sslmode=disable", Password: secret}, "sslmode=disable is refused for host db.internal"},
		{"remote with require", archive.Config{DSN: "postgres://archivist@10.0.0.5/archive?sslmode=require"}, "sslmode=require is refused"},
		{"remote with verify-ca", archive.Config{DSN: "postgres://archivist@db.internal/archive?sslmode=verify-ca", CAPath: ca}, "sslmode=verify-ca is refused"},
		{"a host named like loopback", archive.Config{DSN: "postgres://archivist@localhost.evil.example/archive?sslmode=disable"}, "refused for host localhost.evil.example"},
		{"unknown sslmode", archive.Config{DSN: "postgres://archivist@localhost/archive?sslmode=sure"}, `sslmode "sure" is not an sslmode`},
		{"two passwords", archive.Config{DSN: "postgres://archivist:" + secret + "@db.internal/archive", Password: secret}, "carries a password and ARCHIVE_DB_PASSWORD is set too"},
		{"empty DSN password and the variable", archive.Config{DSN: "postgres://archivist:@db.internal/archive", Password: secret}, "carries a password"},
		{"two CAs", archive.Config{DSN: "postgres://archivist@db.internal/archive?sslrootcert=/a.pem", CAPath: ca}, "sslrootcert and ARCHIVE_DB_CA_PATH"},
		{"CA without verification", archive.Config{DSN: "postgres://archivist@localhost/archive?sslmode=disable", CAPath: ca}, "does not verify the server"},
		{"no user", archive.Config{DSN: "postgres://db.internal/archive"}, "names no user"},
		{"no host", archive.Config{DSN: "postgres://archivist@/archive?host=/tmp"}, "names no host"},
		{"no database", archive.Config{DSN: "postgres://archivist@db.internal"}, "names no database"},
		{"two path segments", archive.Config{DSN: "postgres://archivist@db.internal/a/b"}, "names no database"},
		{"host override", archive.Config{DSN: "postgres://archivist@127.0.0.1/archive?sslmode=disable&host=db.internal"}, `parameter "host" is not supported`},
		{"port override", archive.Config{DSN: "postgres://archivist@db.internal/archive?port=6432"}, `parameter "port"`},
		{"user override", archive.Config{DSN: "postgres://archivist@db.internal/archive?user=postgres"}, `parameter "user"`},
		{"password parameter", archive.Config{DSN: "postgres://archivist@db.internal/archive?password=" + secret}, `parameter "password"`},
		{"dbname override", archive.Config{DSN: "postgres://archivist@db.internal/archive?dbname=postgres"}, `parameter "dbname"`},
		{"service file", archive.Config{DSN: "postgres://archivist@db.internal/archive?servicefile=/tmp/x&service=evil"}, "is not supported"},
		{"server options", archive.Config{DSN: "postgres://archivist@db.internal/archive?options=-c%20search_path%3Devil"}, `parameter "options"`},
		{"sslmode twice", archive.Config{DSN: "postgres://archivist@localhost/archive?sslmode=disable&sslmode=verify-full"}, "given 2 times"},
		{"multiple hosts", archive.Config{DSN: "postgres://archivist:" + secret + "@db1:5432,db2:5432/archive"}, "several hosts"},
		{"fragment", archive.Config{DSN: "postgres://archivist@db.internal/archive#x"}, "not of the form"},
		{"NUL in the password", archive.Config{DSN: "postgres://archivist@db.internal/archive", Password: "a\x00b"}, "NUL"},
		{"NUL in the database", archive.Config{DSN: "postgres://archivist@db.internal/arch%00ive"}, "NUL"},
		{"unparsable, with a password", archive.Config{DSN: "postgres://archivist:" + secret + "@db internal/archive"}, "not a valid URL"},
		{"another scheme, with a password", archive.Config{DSN: "mysql://archivist:" + secret + "@db/archive"}, `scheme "mysql" is not supported`},
		{"password for sqlite", archive.Config{DSN: "sqlite://./a.db", Password: secret}, "ARCHIVE_DB_PASSWORD is set but ARCHIVE_DSN is sqlite://"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.c.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
			} else if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), secret) {
				t.Fatalf("the error shows the password: %v", err)
			}
			var logs strings.Builder
			slog.New(slog.NewJSONHandler(&logs, nil)).Info("x", "archive", tc.c)
			for _, printed := range []string{tc.c.String(), fmt.Sprintf("%v %+v %#v %s", tc.c, tc.c, tc.c, tc.c), logs.String()} {
				if strings.Contains(printed, secret) {
					t.Fatalf("the configuration prints the password: %s", printed)
				}
			}
		})
	}
}

// verify-full against ARCHIVE_DB_CA_PATH: the server's certificate chains to
// the CA and names the host dialed; a certificate from another CA, or a
// host the certificate does not name, is refused and nothing is stored.
func TestPostgresTLS(t *testing.T) {
	c := pgtest.Start(t, pgtest.WithTLS())
	db := c.NewDatabase(t)
	withoutRootCert := func(host string) string {
		u := c.URL(db.Owner, "", db.Name)
		if host != "" {
			u.Host = host + ":" + fmt.Sprint(c.Port())
		}
		q := u.Query()
		q.Del("sslrootcert")
		u.RawQuery = q.Encode()
		return u.String()
	}
	other := filepath.Join(t.TempDir(), "other-ca.pem")
	if err := os.WriteFile(other, pki.NewCA(t, "another CA").PEM, 0o600); err != nil {
		t.Fatal(err)
	}
	restore := archive.SetRetry(3*time.Second, time.Hour, time.Hour) // no background retry within the test
	defer restore()

	t.Run("verify-full with ARCHIVE_DB_CA_PATH", func(t *testing.T) {
		for _, host := range []string{"", "localhost"} {
			cfg := archive.Config{DSN: withoutRootCert(host), Password: db.Password, CAPath: c.CAPath()}
			a := openConfig(t, cfg, nil)
			if !archive.Ready(a.Store) {
				t.Fatalf("%s: not ready", cfg)
			}
			// The cluster refuses TCP without TLS (pgtest.WithTLS), so
			// storing proves the connection was verify-full TLS.
			a.Must("archive_document", archivetest.Doc("tls-"+host, "a.pdf", "pdf", 90, true))
		}
	})
	for _, tc := range []struct {
		name string
		cfg  archive.Config
		want string // in the log
	}{
		{"a CA that did not issue the server's certificate", archive.Config{DSN: withoutRootCert(""), Password: db.Password, CAPath: other}, "certificate signed by unknown authority"},
		{"the system roots instead of the CA", archive.Config{DSN: withoutRootCert(""), Password: db.Password}, "certificate signed by unknown authority"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logs := &syncbuf.Buffer{}
			a := openConfig(t, tc.cfg, slog.New(slog.NewJSONHandler(logs, nil)))
			if archive.Ready(a.Store) {
				t.Fatal("connected")
			}
			_, err := a.Call("archive_document", archivetest.Doc("refused", "a.pdf", "pdf", 90, true))
			archivetest.WantCode(t, err, agentapi.CodeUnavailable)
			if err := a.Store.Ping(t.Context()); err == nil {
				t.Fatal("ping succeeded")
			}
			if !strings.Contains(logs.String(), "archive database unavailable") || (tc.want != "" && !strings.Contains(logs.String(), tc.want)) {
				t.Fatalf("log: %s", logs)
			}
			if strings.Contains(logs.String(), db.Password) {
				t.Fatal("the log shows the password")
			}
		})
	}
	t.Run("unreadable or empty CA file stops start-up", func(t *testing.T) {
		notPEM := filepath.Join(t.TempDir(), "ca.pem")
		if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, path := range []string{filepath.Join(t.TempDir(), "missing.pem"), notPEM} {
			s, err := archive.Open(t.Context(), archive.Config{DSN: withoutRootCert(""), Password: db.Password, CAPath: path}, archivetest.Quiet)
			if err == nil {
				s.Close()
				t.Fatalf("%s accepted", path)
			}
			if !strings.Contains(err.Error(), "ARCHIVE_DB_CA_PATH") {
				t.Fatalf("error %v does not name the variable", err)
			}
		}
	})
}

func openConfig(t *testing.T, cfg archive.Config, log *slog.Logger) *archivetest.Agent {
	t.Helper()
	if log == nil {
		log = archivetest.Quiet
	}
	s, err := archive.Open(t.Context(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return archivetest.Wrap(t, s, "")
}

// The password comes from ARCHIVE_DB_PASSWORD (or the DSN); a wrong one is
// an unreachable database, retried, never logged.
func TestPostgresPassword(t *testing.T) {
	c := pgtest.Shared(t)
	db := c.NewDatabase(t)
	restore := archive.SetRetry(3*time.Second, time.Hour, time.Hour)
	defer restore()
	for _, tc := range []struct {
		name  string
		cfg   archive.Config
		ready bool
	}{
		{"ARCHIVE_DB_PASSWORD", archive.Config{DSN: c.DSN(db.Owner, "", db.Name), Password: db.Password}, true},
		{"in the DSN", archive.Config{DSN: c.DSN(db.Owner, db.Password, db.Name)}, true},
		{"wrong", archive.Config{DSN: c.DSN(db.Owner, "", db.Name), Password: secret}, false},
		{"none", archive.Config{DSN: c.DSN(db.Owner, "", db.Name)}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logs := &syncbuf.Buffer{}
			a := openConfig(t, tc.cfg, slog.New(slog.NewJSONHandler(logs, nil)))
			if archive.Ready(a.Store) != tc.ready {
				t.Fatalf("ready %v, want %v: %s", !tc.ready, tc.ready, logs)
			}
			if strings.Contains(logs.String(), secret) || strings.Contains(logs.String(), db.Password) {
				t.Fatalf("the log shows a password: %s", logs)
			}
			if !tc.ready && !strings.Contains(logs.String(), "password authentication failed") {
				t.Fatalf("log lacks the cause: %s", logs)
			}
		})
	}
}

// The database down when the archivist starts: the store opens anyway,
// answers -32002 and fails Ping while it retries with backoff, then works
// once the database is back, without being reopened. The same after an
// outage of a store that was working.
func TestPostgresDatabaseDown(t *testing.T) {
	c := pgtest.Start(t)
	db := c.NewDatabase(t)
	restore := archive.SetRetry(2*time.Second, 50*time.Millisecond, 400*time.Millisecond)
	defer restore()
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	logs := &syncbuf.Buffer{}
	a := openConfig(t, archive.Config{DSN: c.DSN(db.Owner, "", db.Name), Password: db.Password}, slog.New(slog.NewJSONHandler(logs, nil)))

	down := func(t *testing.T) {
		t.Helper()
		for _, call := range []struct{ method, params string }{
			{"archive_document", archivetest.Doc("during", "a.pdf", "pdf", 90, true)},
			{"get_document", `{"document_id":"before"}`},
			{"update_document_status", `{"document_id":"before","status":"rejected"}`},
			{"search_documents", `{}`},
			{"get_document_stats", `{}`},
		} {
			_, err := a.Call(call.method, call.params)
			archivetest.WantCode(t, err, agentapi.CodeUnavailable)
		}
		if err := a.Store.Ping(t.Context()); err == nil {
			t.Fatal("ping succeeded with the database down")
		}
	}
	// up waits, bounded, for the store to answer again.
	up := func(t *testing.T) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for a.Store.Ping(t.Context()) != nil {
			if time.Now().After(deadline) {
				t.Fatalf("the store did not recover within 30s:\n%s", logs)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	t.Run("down at start", func(t *testing.T) {
		if archive.Ready(a.Store) {
			t.Fatal("ready with the database down")
		}
		down(t)
		// Give the backoff a few rounds, then check they were logged.
		time.Sleep(time.Second)
		if n := strings.Count(logs.String(), "archive database unavailable"); n < 3 {
			t.Fatalf("%d retries logged in a second, want several:\n%s", n, logs)
		}
	})
	t.Run("up again: works without a restart", func(t *testing.T) {
		if err := c.Restart(); err != nil {
			t.Fatal(err)
		}
		up(t)
		a.Must("archive_document", archivetest.Doc("before", "a.pdf", "pdf", 90, true))
		if !strings.Contains(logs.String(), "archive database ready") {
			t.Fatalf("recovery not logged: %s", logs)
		}
	})
	t.Run("down while serving", func(t *testing.T) {
		if err := c.Stop(); err != nil {
			t.Fatal(err)
		}
		down(t)
		if err := c.Restart(); err != nil {
			t.Fatal(err)
		}
		up(t)
		// A connection the pool held from before the outage may fail
		// once; the next call gets a fresh one.
		for range 2 {
			if _, err := a.Call("get_document", `{"document_id":"before"}`); err == nil {
				break
			}
		}
		a.Must("archive_document", archivetest.Doc("after", "b.pdf", "pdf", 90, true))
		if n := a.Total(); n != 2 {
			t.Fatalf("%d documents, want 2 (nothing of the calls made while down)", n)
		}
	})
	if strings.Contains(logs.String(), db.Password) {
		t.Fatal("the log shows the password")
	}
}

// Closing a store that is still retrying ends its retry loop (goleak checks
// the goroutine is gone at the end of the binary).
func TestPostgresCloseWhileRetrying(t *testing.T) {
	c := pgtest.Start(t)
	db := c.NewDatabase(t)
	restore := archive.SetRetry(time.Second, 20*time.Millisecond, 50*time.Millisecond)
	defer restore()
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	s, err := archive.Open(context.Background(), archive.Config{DSN: c.DSN(db.Owner, db.Password, db.Name)}, archivetest.Quiet)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	done := make(chan struct{})
	go func() { s.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Close did not return")
	}
}
