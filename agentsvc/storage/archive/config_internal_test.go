package archive

import (
	"net/url"
	"strings"
	"testing"
)

// The connection string handed to pgx names everything itself (host, port,
// sslmode, the CA) so that no PG* variable of the environment can change
// where or how the store connects, and carries no password: that is set on
// the configuration, so no pgx message can quote it.
func TestConnString(t *testing.T) {
	tests := []struct {
		c                Config
		host, port, mode string
		rootCert, passwd string
	}{
		{Config{DSN: "postgres://archivist@db.internal/archive", Password: "pw1", CAPath: "/etc/ca.pem"}, "db.internal", "5432", "verify-full", "/etc/ca.pem", "pw1"},
		{Config{DSN: "postgresql://archivist:pw2@127.0.0.1:6543/archive?sslmode=disable"}, "127.0.0.1", "6543", "disable", "", "pw2"},
		{Config{DSN: "postgres://archivist@[::1]/archive?sslmode=require&pool_max_conns=3"}, "::1", "5432", "require", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.c.DSN, func(t *testing.T) {
			pt, err := parsePostgres(tc.c)
			if err != nil {
				t.Fatal(err)
			}
			u, err := url.Parse(pt.connString)
			if err != nil {
				t.Fatal(err)
			}
			if _, has := u.User.Password(); has || (tc.passwd != "" && strings.Contains(pt.connString, tc.passwd)) {
				t.Fatalf("connection string carries the password: %s", pt.connString)
			}
			q := u.Query()
			if u.Hostname() != tc.host || u.Port() != tc.port || q.Get("sslmode") != tc.mode || q.Get("sslrootcert") != tc.rootCert || pt.password != tc.passwd {
				t.Fatalf("%s (password %q)", pt.connString, pt.password)
			}
		})
	}
}

// The bundle the agent image ships for RDS (ARCHIVE_DB_CA_PATH in AWS)
// passes the start-up check.
func TestRDSBundleIsAccepted(t *testing.T) {
	if err := checkCAFile("../../../infra/rds/global-bundle.pem"); err != nil {
		t.Fatal(err)
	}
}
