package pgtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"

	"github.com/ca-a2a/ca-a2a/internal/pgcluster"
	"github.com/ca-a2a/ca-a2a/internal/testutil/pki"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(SharedMain(m)) }

// connect opens a connection closed when the test ends.
func connect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := tryConnect(dsn)
	if err != nil {
		t.Fatalf("connecting to %s: %v", redact(dsn), err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func tryConnect(dsn string) (*pgx.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return pgx.Connect(ctx, dsn)
}

func redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "(unparsable DSN)"
	}
	return u.Redacted()
}

func queryString(t *testing.T, conn *pgx.Conn, sql string, args ...any) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var s string
	if err := conn.QueryRow(ctx, sql, args...).Scan(&s); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return s
}

func exec1(t *testing.T, conn *pgx.Conn, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// family is the postmaster of c and its children (backends, checkpointer,
// walwriter...), each in a session of its own.
func family(t *testing.T, c *Cluster) []int {
	t.Helper()
	pids := c.Processes()
	if len(pids) < 2 {
		t.Fatalf("postmaster and children: %v", pids)
	}
	return pids
}

// waitGone waits, bounded, until none of pids is alive.
func waitGone(t *testing.T, pids []int) {
	t.Helper()
	for i := 0; i < 200; i++ {
		var left []int
		for _, p := range pids {
			if pgcluster.Alive(p) {
				left = append(left, p)
			}
		}
		if len(left) == 0 {
			return
		}
		if i == 199 {
			t.Errorf("processes %v still run", left)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func refused(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return true
	}
	c.Close()
	return false
}

func postmasterPID(t *testing.T, c *Cluster) int {
	t.Helper()
	pid := c.PID()
	if pid == 0 {
		t.Fatal("server not running")
	}
	return pid
}

func TestStartAndCreateDatabase(t *testing.T) {
	c := Start(t)
	admin := connect(t, c.AdminDSN())
	if got := queryString(t, admin, "SELECT current_user"); got != AdminUser {
		t.Errorf("admin is %q", got)
	}
	for setting, want := range map[string]string{"listen_addresses": Host, "fsync": "off", "port": strconv.Itoa(c.Port()), "unix_socket_directories": c.SocketDir(), "ssl": "off"} {
		if got := queryString(t, admin, "SELECT current_setting($1)", setting); got != want {
			t.Errorf("%s = %q, want %q", setting, got, want)
		}
	}
	if _, err := os.Stat(filepath.Join(c.SocketDir(), ".s.PGSQL."+strconv.Itoa(c.Port()))); err != nil {
		t.Errorf("unix socket: %v", err)
	}
	if !strings.HasPrefix(c.SocketDir(), c.Dir()+string(filepath.Separator)) {
		t.Errorf("socket dir %s is not inside %s", c.SocketDir(), c.Dir())
	}

	tests := []struct{ name, db, owner, password string }{
		{"plain", "archive", "archivist", "s3cret"},
		{"characters that need quoting and escaping", `arch"ive db`, `o'wner`, `p@ss:w/o'rd\%?#&= é`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dsn := c.CreateDatabase(t, tc.db, tc.owner, tc.password)
			u, err := url.Parse(dsn)
			if err != nil || u.Scheme != "postgres" || u.Query().Get("sslmode") != "disable" {
				t.Fatalf("DSN %s: %v", redact(dsn), err)
			}
			conn := connect(t, dsn)
			if got := queryString(t, conn, "SELECT current_user"); got != tc.owner {
				t.Errorf("current_user %q, want %q", got, tc.owner)
			}
			if got := queryString(t, conn, "SELECT current_database()"); got != tc.db {
				t.Errorf("current_database %q, want %q", got, tc.db)
			}
			// The owner can create its schema (PostgreSQL 15 took CREATE on
			// public away from PUBLIC, not from the database owner).
			exec1(t, conn, "CREATE TABLE t (id int PRIMARY KEY)")
			if got := queryString(t, conn, "SELECT rolsuper::text FROM pg_roles WHERE rolname = current_user"); got != "false" {
				t.Errorf("owner is a superuser: %s", got)
			}

			for name, bad := range map[string]string{
				"wrong password": c.DSN(tc.owner, tc.password+"x", tc.db),
				"no password":    c.DSN(tc.owner, "", tc.db),
			} {
				if conn, err := tryConnect(bad); err == nil {
					conn.Close(context.Background())
					t.Errorf("%s: connected", name)
				}
			}
		})
	}

	t.Run("existing role gets the new password", func(t *testing.T) {
		c.CreateDatabase(t, "first", "shared_owner", "one")
		dsn := c.CreateDatabase(t, "second", "shared_owner", "two")
		connect(t, dsn)
		if conn, err := tryConnect(c.DSN("shared_owner", "one", "first")); err == nil {
			conn.Close(context.Background())
			t.Error("old password still works")
		}
	})

	t.Run("NewDatabase gives distinct names", func(t *testing.T) {
		a, b := c.NewDatabase(t), c.NewDatabase(t)
		if a.Name == b.Name || a.Owner == b.Owner || a.Password == b.Password || len(a.Password) < 32 {
			t.Errorf("%+v and %+v", a, b)
		}
		conn := connect(t, b.DSN)
		if got := queryString(t, conn, "SELECT current_database()"); got != b.Name {
			t.Errorf("connected to %q", got)
		}
	})
}

// The server must not run as root; as root it runs as an unprivileged account.
func TestRunsUnprivileged(t *testing.T) {
	c := Start(t)
	pid := postmasterPID(t, c)
	st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	var uid string
	for _, line := range strings.Split(string(st), "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[0] == "Uid:" {
			uid = f[1]
		}
	}
	want := strconv.Itoa(os.Geteuid())
	if os.Geteuid() == 0 {
		name, uid := c.Account()
		if name == "" {
			t.Fatal("running as root without an account")
		}
		want = strconv.Itoa(uid)
	}
	if uid != want || uid == "0" {
		t.Errorf("postmaster uid %s, want %s (not 0)", uid, want)
	}
}

func TestTLS(t *testing.T) {
	c := Start(t, WithTLS())
	if c.CAPath() == "" {
		t.Fatal("no CA path")
	}
	db := c.NewDatabase(t)
	otherCA := pki.NewCA(t, "other")
	otherPath := filepath.Join(t.TempDir(), "other.pem")
	if err := os.WriteFile(otherPath, otherCA.PEM, 0o600); err != nil {
		t.Fatal(err)
	}
	withQuery := func(host string, set map[string]string) string {
		u := c.URL(db.Owner, db.Password, db.Name)
		if host != "" {
			u.Host = net.JoinHostPort(host, strconv.Itoa(c.Port()))
		}
		q := u.Query()
		for k, v := range set {
			q.Set(k, v)
		}
		u.RawQuery = q.Encode()
		return u.String()
	}
	tests := []struct {
		name string
		dsn  string
		ok   bool
	}{
		{"verify-full to 127.0.0.1", db.DSN, true},
		{"verify-full to localhost", withQuery("localhost", nil), true},
		{"admin", c.AdminDSN(), true},
		{"plain text refused", withQuery("", map[string]string{"sslmode": "disable"}), false},
		{"another CA", withQuery("", map[string]string{"sslrootcert": otherPath}), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := tryConnect(tc.dsn)
			if !tc.ok {
				if err == nil {
					conn.Close(context.Background())
					t.Fatal("connected")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(context.Background())
			if u, _ := url.Parse(tc.dsn); u.Query().Get("sslmode") != "verify-full" {
				t.Errorf("DSN sslmode %q", u.Query().Get("sslmode"))
			}
			var ssl bool
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := conn.QueryRow(ctx, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&ssl); err != nil || !ssl {
				t.Errorf("ssl %v, %v", ssl, err)
			}
		})
	}
}

func TestStopKillRestart(t *testing.T) {
	c := Start(t)
	db := c.NewDatabase(t)
	conn := connect(t, db.DSN)
	exec1(t, conn, "CREATE TABLE t (n int)")
	port := c.Port()

	var inserted []string
	for i, tc := range []struct {
		name string
		down func() error
	}{
		{"stop", c.Stop},
		{"kill", c.Kill},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn := connect(t, db.DSN)
			exec1(t, conn, "INSERT INTO t VALUES ($1)", i)
			inserted = append(inserted, strconv.Itoa(i))
			pids := family(t, c)
			if err := tc.down(); err != nil {
				t.Fatal(err)
			}
			// Gone already: Restart needs the old shared memory released.
			for _, p := range pids {
				if pgcluster.Alive(p) {
					t.Errorf("process %d of the server survived %s", p, tc.name)
				}
			}
			if !refused(c.Addr()) {
				t.Error("port still accepts connections")
			}
			if err := tc.down(); err != nil {
				t.Errorf("second %s: %v", tc.name, err)
			}
			if err := c.Cluster.CreateDatabase("x", "y", "z"); !errors.Is(err, ErrStopped) {
				t.Errorf("CreateDatabase while stopped: %v", err)
			}
			if err := c.Restart(); err != nil {
				t.Fatal(err)
			}
			if c.Port() != port {
				t.Errorf("port %d after restart, was %d", c.Port(), port)
			}
			// Committed rows survive a shutdown and a crash alike.
			conn = connect(t, db.DSN)
			if got, want := queryString(t, conn, "SELECT string_agg(n::text, ',' ORDER BY n) FROM t"), strings.Join(inserted, ","); got != want {
				t.Errorf("rows %q after %s, want %q", got, tc.name, want)
			}
		})
	}

	t.Run("restart while running", func(t *testing.T) {
		pids := family(t, c)
		if err := c.Restart(); err != nil {
			t.Fatal(err)
		}
		waitGone(t, pids)
		connect(t, db.DSN)
	})
}

// state is what the helper process reports about its cluster.
type state struct {
	PIDs    []int // the postmaster and its children
	Dir     string
	LogPath string
	Addr    string
}

// TestHelperProcess is the failing test that TestStopsWhenTheTestFails runs
// in a child process; it does nothing in a normal run.
func TestHelperProcess(t *testing.T) {
	mode := os.Getenv("PGTEST_HELPER")
	if mode == "" {
		return
	}
	c := Start(t)
	b, _ := json.Marshal(state{PIDs: family(t, c), Dir: c.Dir(), LogPath: c.LogPath(), Addr: c.Addr()})
	if err := os.WriteFile(os.Getenv("PGTEST_STATE"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	switch mode {
	case "fail":
		t.Fatal("deliberate failure")
	case "panic":
		panic("deliberate panic")
	case "goexit":
		runtime.Goexit()
	case "hang":
		time.Sleep(time.Minute) // killed by the parent
	}
}

func TestStopsWhenTheTestFails(t *testing.T) {
	requireBinaries(t)
	tests := []struct {
		mode string
		// killed: the test binary is SIGKILLed, no cleanup runs; the kernel
		// kills the postmaster (parent-death signal) and the directory stays.
		killed bool
	}{
		{mode: "fail"},
		{mode: "panic"},
		{mode: "goexit"},
		{mode: "hang", killed: true},
	}
	for _, tc := range tests {
		t.Run(tc.mode, func(t *testing.T) {
			statePath := filepath.Join(t.TempDir(), "state.json")
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1", "-test.v")
			cmd.Env = append(os.Environ(), "PGTEST_HELPER="+tc.mode, "PGTEST_STATE="+statePath)
			var out strings.Builder
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			waited := make(chan error, 1)
			go func() { waited <- cmd.Wait() }()
			var st state
			if tc.killed {
				for i := 0; ; i++ {
					if b, err := os.ReadFile(statePath); err == nil && json.Unmarshal(b, &st) == nil {
						break
					}
					if i == 1200 {
						_ = cmd.Process.Kill()
						<-waited
						t.Fatalf("helper never reported its cluster:\n%s", out.String())
					}
					time.Sleep(50 * time.Millisecond)
				}
				_ = cmd.Process.Kill()
			}
			err := <-waited
			if err == nil {
				t.Fatalf("helper passed:\n%s", out.String())
			}
			if !tc.killed {
				b, err := os.ReadFile(statePath)
				if err != nil || json.Unmarshal(b, &st) != nil {
					t.Fatalf("helper state: %v\n%s", err, out.String())
				}
			}
			t.Cleanup(func() { os.RemoveAll(st.Dir); os.Remove(st.LogPath) })
			if len(st.PIDs) == 0 || !strings.Contains(filepath.Base(st.Dir), "pgtest-") {
				t.Fatalf("state %+v", st)
			}
			waitGone(t, st.PIDs)
			if !refused(st.Addr) {
				t.Errorf("%s still accepts connections", st.Addr)
			}
			_, dirErr := os.Stat(st.Dir)
			_, logErr := os.Stat(st.LogPath)
			if tc.killed {
				return // nothing ran to remove them; the cleanup above does
			}
			if !errors.Is(dirErr, os.ErrNotExist) {
				t.Errorf("cluster directory %s left behind: %v", st.Dir, dirErr)
			}
			// A failed test keeps the log and says where it is.
			if logErr != nil {
				t.Fatalf("log of the failed test: %v", logErr)
			}
			// The test's cleanup shut the server down, not the parent-death
			// signal when the helper process exited.
			if log, _ := os.ReadFile(st.LogPath); !strings.Contains(string(log), "received fast shutdown request") {
				t.Errorf("no fast shutdown in the log:\n%s", log)
			}
			if !strings.Contains(out.String(), "postgres log kept in "+st.LogPath) {
				t.Errorf("helper output does not name the log %s:\n%s", st.LogPath, out.String())
			}
		})
	}
}

func TestCleanupRemovesEverything(t *testing.T) {
	var st state
	t.Run("cluster", func(t *testing.T) {
		c := Start(t, WithTLS())
		st = state{PIDs: family(t, c), Dir: c.Dir(), LogPath: c.LogPath(), Addr: c.Addr()}
		connect(t, c.AdminDSN())
	})
	if len(st.PIDs) == 0 {
		t.Fatal("subtest did not start a cluster")
	}
	waitGone(t, st.PIDs)
	if !refused(st.Addr) {
		t.Error("port still accepts connections")
	}
	for _, p := range []string{st.Dir, st.LogPath} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left after a passing test: %v", p, err)
		}
	}
}

func TestShared(t *testing.T) {
	var first *Cluster
	for i := range 2 {
		t.Run("test"+strconv.Itoa(i), func(t *testing.T) {
			c := Shared(t)
			if first == nil {
				first = c
			} else if c != first {
				t.Error("a second cluster")
			}
			db := c.NewDatabase(t)
			connect(t, db.DSN)
			for name, f := range map[string]func() error{"Stop": c.Stop, "Kill": c.Kill, "Restart": c.Restart} {
				if err := f(); !errors.Is(err, ErrShared) {
					t.Errorf("%s: %v", name, err)
				}
			}
		})
	}
	// Each test's database is dropped when it ends.
	admin := connect(t, first.AdminDSN())
	if got := queryString(t, admin, "SELECT count(*)::text FROM pg_database WHERE datname LIKE 'pgtest_db_%'"); got != "0" {
		t.Errorf("%s test databases left", got)
	}
}

// fakeM stands for testing.M around SharedMain.
type fakeM func() int

func (f fakeM) Run() int { return f() }

func TestSharedMainTearsDown(t *testing.T) {
	saved := shared
	shared = &sharedState{}
	defer func() { shared = saved }()

	var st state
	code := SharedMain(fakeM(func() int {
		c := Shared(t)
		st = state{PIDs: family(t, c), Dir: c.Dir(), LogPath: c.LogPath(), Addr: c.Addr()}
		connect(t, c.NewDatabase(t).DSN)
		return 0
	}), WithTLS()).Run()
	if code != 0 || len(st.PIDs) == 0 {
		t.Fatalf("code %d, state %+v", code, st)
	}
	waitGone(t, st.PIDs)
	if !refused(st.Addr) {
		t.Error("shared cluster still runs after SharedMain's Run returned")
	}
	for _, p := range []string{st.Dir, st.LogPath} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left: %v", p, err)
		}
	}
}

func TestSharedWithoutSharedMain(t *testing.T) {
	saved := shared
	shared = &sharedState{}
	defer func() { shared = saved }()
	ft := &fatalRecorder{TB: t}
	run(func() { Shared(ft) })
	if !ft.fatal {
		t.Error("Shared without SharedMain did not fail")
	}
}

func TestSettings(t *testing.T) {
	for _, tc := range []struct {
		name, value string
		ok          bool
	}{
		{"max_connections", "42", true},
		{"port", "5432", false},
		{"listen_addresses", "*", false},
		{"hba_file", "/etc/passwd", false},
		{"Bad Name", "1", false},
		{"work_mem", "1\x00", false},
	} {
		o := collect([]Option{WithSetting(tc.name, tc.value)})
		if (o.err == nil) != tc.ok {
			t.Errorf("%s=%q: err %v", tc.name, tc.value, o.err)
		}
		if !tc.ok {
			ft := &fatalRecorder{TB: t}
			run(func() { Start(ft, WithSetting(tc.name, tc.value)) })
			if !ft.fatal {
				t.Errorf("Start with %s did not fail", tc.name)
			}
		}
	}
	c := Start(t, WithSetting("max_connections", "42"))
	if got := queryString(t, connect(t, c.AdminDSN()), "SHOW max_connections"); got != "42" {
		t.Errorf("max_connections %s", got)
	}
}

func TestMissingBinaries(t *testing.T) {
	saved := shared
	shared = &sharedState{installed: true}
	defer func() { shared = saved }()
	savedFind := findBinaries
	findBinaries = func() (pgcluster.Binaries, error) { return pgcluster.Binaries{}, pgcluster.ErrNoBinaries }
	defer func() { findBinaries = savedFind }()

	t.Setenv("CI", "")
	skipped := false
	t.Run("outside CI", func(t *testing.T) {
		defer func() { skipped = t.Skipped() }()
		Start(t)
	})
	if !skipped {
		t.Error("want a skip outside CI")
	}
	for _, ci := range []string{"true", "1"} {
		t.Setenv("CI", ci)
		for name, f := range map[string]func(testing.TB){
			"Start":  func(tb testing.TB) { Start(tb) },
			"Shared": func(tb testing.TB) { Shared(tb) },
		} {
			ft := &fatalRecorder{TB: t}
			run(func() { f(ft) })
			if !ft.fatal || ft.skipped {
				t.Errorf("%s with CI=%s: want a failure", name, ci)
			}
		}
	}
}

// run calls f on a goroutine of its own, so that a recorded Fatal or Skip
// (runtime.Goexit) ends only that goroutine.
func run(f func()) {
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	<-done
}

type fatalRecorder struct {
	testing.TB
	fatal, skipped bool
	msg            string
}

func (f *fatalRecorder) Helper() {}
func (f *fatalRecorder) Fatal(args ...any) {
	f.fatal, f.msg = true, fmt.Sprint(args...)
	runtime.Goexit()
}
func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.fatal, f.msg = true, fmt.Sprintf(format, args...)
	runtime.Goexit()
}
func (f *fatalRecorder) Skip(...any)          { f.skipped = true; runtime.Goexit() }
func (f *fatalRecorder) Skipf(string, ...any) { f.skipped = true; runtime.Goexit() }
