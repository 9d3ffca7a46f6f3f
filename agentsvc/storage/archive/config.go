package archive

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"sort"
	"strings"
)

// Engines, as Config.Engine names them.
const (
	EngineSQLite   = "sqlite"
	EnginePostgres = "postgres"
)

// DSNScheme is the scheme of the embedded store, sqlite://PATH.
const DSNScheme = "sqlite://"

// postgresSchemes are the schemes of the PostgreSQL store.
var postgresSchemes = []string{"postgres://", "postgresql://"}

// Config selects and reaches the store: the archivist's ARCHIVE_DSN,
// ARCHIVE_DB_PASSWORD and ARCHIVE_DB_CA_PATH (docs/configuration.md). It
// holds a secret: String, GoString and LogValue redact it, so a Config can
// be logged or printed as a whole.
type Config struct {
	// DSN is sqlite://PATH or postgres://USER@HOST[:PORT]/DB[?sslmode=...]
	// (postgresql:// too).
	DSN string
	// Password is the database password when the DSN carries none.
	Password string
	// CAPath names the PEM bundle the database server's certificate must
	// chain to (sslmode=verify-full).
	CAPath string
}

// Engine is EngineSQLite or EnginePostgres by the DSN's scheme, "" for
// anything else.
func (c Config) Engine() string {
	if strings.HasPrefix(c.DSN, DSNScheme) {
		return EngineSQLite
	}
	for _, s := range postgresSchemes {
		if strings.HasPrefix(c.DSN, s) {
			return EnginePostgres
		}
	}
	return ""
}

// Redacted is the DSN without its password, fit for logs: the SQLite path,
// or the PostgreSQL URL with any password replaced by "xxxxx".
func (c Config) Redacted() string {
	if c.Engine() != EnginePostgres {
		if scheme, _, ok := strings.Cut(c.DSN, "://"); ok && c.Engine() == "" {
			return scheme + "://..." // not ours: the rest may hold credentials
		}
		return c.DSN
	}
	u, err := url.Parse(c.DSN)
	if err != nil {
		return "postgres://(unparsable)"
	}
	// A password may also hide in the query, refused by Validate but
	// printed before it.
	if q, err := url.ParseQuery(u.RawQuery); err != nil {
		u.RawQuery = "(unparsable)"
	} else {
		for k := range q {
			if strings.Contains(strings.ToLower(k), "password") {
				q.Set(k, "xxxxx")
			}
		}
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

// String is Redacted: a Config printed with %v never shows the password.
func (c Config) String() string { return c.Redacted() }

// GoString keeps %#v from printing the password.
func (c Config) GoString() string {
	return fmt.Sprintf("archive.Config{DSN: %q, Password: %s, CAPath: %q}", c.Redacted(), redactedIfSet(c.Password), c.CAPath)
}

// LogValue logs the engine, the redacted DSN, whether a password is set and
// the CA path.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(slog.String("engine", c.Engine()), slog.String("dsn", c.Redacted()),
		slog.Bool("password_set", c.Password != ""), slog.String("ca_path", c.CAPath))
}

func redactedIfSet(s string) string {
	if s == "" {
		return `""`
	}
	return "[redacted]"
}

// Validate checks c without touching the network or the file system, and
// reports the first problem, naming the variable. Error messages never
// contain the password nor, for a DSN that is not understood, anything past
// its scheme.
func (c Config) Validate() error {
	switch c.Engine() {
	case EngineSQLite:
		path := strings.TrimPrefix(c.DSN, DSNScheme)
		if path == "" || strings.ContainsRune(path, 0) {
			return errors.New("archivist: ARCHIVE_DSN sqlite://PATH needs a file path")
		}
		if c.Password != "" {
			return errors.New("archivist: ARCHIVE_DB_PASSWORD is set but ARCHIVE_DSN is sqlite://: the password is for a postgres:// DSN (is ARCHIVE_DSN missing?)")
		}
		if c.CAPath != "" {
			return errors.New("archivist: ARCHIVE_DB_CA_PATH is set but ARCHIVE_DSN is sqlite://: the CA is for a postgres:// DSN (is ARCHIVE_DSN missing?)")
		}
		return nil
	case EnginePostgres:
		_, err := parsePostgres(c)
		return err
	}
	scheme, _, found := strings.Cut(c.DSN, "://")
	if !found {
		return errors.New("archivist: ARCHIVE_DSN must be sqlite://PATH or postgres://USER@HOST:PORT/DB?sslmode=verify-full")
	}
	// Only the scheme is echoed: the rest may hold credentials.
	return fmt.Errorf("archivist: ARCHIVE_DSN scheme %q is not supported; use sqlite://PATH or postgres://USER@HOST:PORT/DB?sslmode=verify-full", scheme)
}

// Open opens the store c selects, after Validate. SQLite opens (and
// migrates) the file now and fails when it cannot. PostgreSQL connects and
// migrates now if it can; an unreachable database is retried in the
// background, with backoff, while the store answers ErrUnavailable and Ping
// fails, so that the agent serves and reports the outage meanwhile. A
// configuration the database can never accept (a schema newer than this
// program) fails at once. logger (nil: slog.Default()) receives the storage
// errors that clients only see as -32002.
func Open(ctx context.Context, c Config, logger *slog.Logger) (Store, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.Default()
	}
	if c.Engine() == EnginePostgres {
		return openPostgres(ctx, c, logger)
	}
	path := strings.TrimPrefix(c.DSN, DSNScheme)
	if path == MemoryPath {
		return openMemory(ctx, logger)
	}
	return openFile(ctx, path, logger)
}

// OpenDSN is Open with the DSN alone: no password variable, no CA path.
func OpenDSN(ctx context.Context, dsn string, logger *slog.Logger) (Store, error) {
	return Open(ctx, Config{DSN: dsn}, logger)
}

// sslModes are libpq's; only verify-full proves that the server is the
// database named in the DSN.
var sslModes = map[string]bool{"disable": true, "allow": true, "prefer": true, "require": true, "verify-ca": true, "verify-full": true}

// postgresParams are the query parameters an ARCHIVE_DSN may carry. Every
// other one is refused: host, port, user, password and dbname would
// override the URL's own (and defeat the loopback check), service and
// servicefile would read settings from a file, and unknown ones would
// become server parameters.
var postgresParams = map[string]bool{
	"sslmode": true, "sslrootcert": true, "connect_timeout": true, "application_name": true,
	"pool_max_conns": true, "pool_min_conns": true, "pool_max_conn_lifetime": true,
	"pool_max_conn_idle_time": true, "pool_health_check_period": true,
}

// pgTarget is a validated PostgreSQL configuration.
type pgTarget struct {
	// connString is the DSN without its password, with sslmode, port and
	// (from CAPath) sslrootcert always explicit, so that no PG* variable of
	// the environment changes where or how the store connects.
	connString string
	password   string
	host       string
	loopback   bool
	sslMode    string
}

// parsePostgres validates a postgres:// or postgresql:// configuration.
func parsePostgres(c Config) (*pgTarget, error) {
	const form = "postgres://USER@HOST:PORT/DB?sslmode=verify-full"
	u, err := url.Parse(c.DSN)
	if err != nil {
		// url's error quotes the input, password included.
		return nil, errors.New("archivist: ARCHIVE_DSN is not a valid URL; want " + form)
	}
	if u.Opaque != "" || u.Fragment != "" || u.RawFragment != "" {
		return nil, errors.New("archivist: ARCHIVE_DSN is not of the form " + form)
	}
	if u.User == nil || u.User.Username() == "" {
		return nil, errors.New("archivist: ARCHIVE_DSN names no user; want " + form)
	}
	host := u.Hostname()
	if host == "" {
		return nil, errors.New("archivist: ARCHIVE_DSN names no host; want " + form)
	}
	if strings.Contains(u.Host, ",") {
		return nil, errors.New("archivist: ARCHIVE_DSN names several hosts; name one (the database's endpoint)")
	}
	db := strings.TrimPrefix(u.Path, "/")
	if db == "" || strings.Contains(db, "/") {
		return nil, errors.New("archivist: ARCHIVE_DSN names no database (or more than one path segment); want " + form)
	}
	dsnPassword, hasPassword := u.User.Password()
	if strings.ContainsRune(u.User.Username()+dsnPassword+db+c.Password+c.CAPath, 0) {
		return nil, errors.New("archivist: ARCHIVE_DSN, ARCHIVE_DB_PASSWORD and ARCHIVE_DB_CA_PATH cannot contain a NUL byte")
	}
	if hasPassword && c.Password != "" {
		return nil, errors.New("archivist: ARCHIVE_DSN carries a password and ARCHIVE_DB_PASSWORD is set too; set only one (ARCHIVE_DB_PASSWORD keeps it out of the DSN)")
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return nil, errors.New("archivist: ARCHIVE_DSN has a malformed query string")
	}
	for k, vs := range q {
		if !postgresParams[k] {
			return nil, fmt.Errorf("archivist: ARCHIVE_DSN parameter %q is not supported (allowed: %s)", k, allowedParams())
		}
		if len(vs) != 1 {
			return nil, fmt.Errorf("archivist: ARCHIVE_DSN parameter %q is given %d times", k, len(vs))
		}
	}
	t := &pgTarget{host: host, loopback: loopbackHost(host), password: c.Password}
	if hasPassword {
		t.password = dsnPassword
	}
	t.sslMode = q.Get("sslmode")
	if t.sslMode == "" {
		t.sslMode = "verify-full"
	}
	switch {
	case !sslModes[t.sslMode]:
		return nil, fmt.Errorf("archivist: ARCHIVE_DSN sslmode %q is not an sslmode (use verify-full)", t.sslMode)
	case t.sslMode != "verify-full" && !t.loopback:
		return nil, fmt.Errorf("archivist: ARCHIVE_DSN sslmode=%s is refused for host %s: beyond the loopback host only sslmode=verify-full is allowed, so that the server proves it is the database named (set ARCHIVE_DB_CA_PATH to its CA bundle)", t.sslMode, host)
	}
	if c.CAPath != "" {
		if q.Has("sslrootcert") {
			return nil, errors.New("archivist: ARCHIVE_DSN has sslrootcert and ARCHIVE_DB_CA_PATH is set too; set only one")
		}
		if t.sslMode != "verify-full" && t.sslMode != "verify-ca" {
			return nil, fmt.Errorf("archivist: ARCHIVE_DB_CA_PATH is set but ARCHIVE_DSN sslmode=%s does not verify the server against it; use sslmode=verify-full", t.sslMode)
		}
		q.Set("sslrootcert", c.CAPath)
	}
	q.Set("sslmode", t.sslMode)
	plain := *u
	plain.User = url.User(u.User.Username())
	if plain.Port() == "" {
		plain.Host = net.JoinHostPort(host, "5432")
	}
	plain.RawQuery = q.Encode()
	t.connString = plain.String()
	return t, nil
}

func allowedParams() string {
	var ks []string
	for k := range postgresParams {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return strings.Join(ks, ", ")
}

// loopbackHost reports whether host is this machine: localhost or a
// loopback address. Only there may the connection go without verify-full.
func loopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
