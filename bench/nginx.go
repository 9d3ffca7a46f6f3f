package bench

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/ca-a2a/ca-a2a/internal/loopback"
	"github.com/ca-a2a/ca-a2a/internal/procgroup"
	"github.com/ca-a2a/ca-a2a/internal/testutil/syncbuf"
)

// NginxBody is what the reference server answers on /health.
const NginxBody = `{"status":"healthy","agent":"nginx"}`

// FindNginx returns the nginx binary: path when set, else nginx on PATH or
// in /usr/sbin (Debian's place, often not on a user's PATH).
func FindNginx(path string) (string, error) {
	if path != "" {
		return path, nil
	}
	if p, err := exec.LookPath("nginx"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
		return "/usr/sbin/nginx", nil
	}
	return "", errors.New("nginx is not installed (bench/run.sh installs it with apt-get when run as root)")
}

// StartNginx runs nginx on 127.0.0.1 with a certificate for nginx.ca-a2a.local
// from f's CA and ssl_verify_client on against that CA, answering NginxBody
// on GET /health, until tb ends. It uses as many worker processes as the
// machine has cores, like the Go server, and logs nothing per request. An
// nginx that does not start is an error, not a failure of tb: only the
// reference row is lost.
func (f *Fixture) StartNginx(tb testing.TB, bin string) (url string, err error) {
	tb.Helper()
	dir := tb.TempDir()
	leaf := f.CA.Issue(tb, "nginx")
	files := map[string][]byte{"cert.pem": leaf.CertPEM, "key.pem": leaf.KeyPEM, "ca.pem": f.CA.PEM}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			tb.Fatal(err)
		}
	}
	port, err := loopback.FreePort()
	if err != nil {
		tb.Fatal(err)
	}
	conf := fmt.Sprintf(`daemon off;
worker_processes auto;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_requests 10000000;
  keepalive_timeout 120s;
  client_body_temp_path %[1]s/client_body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
  server {
    listen 127.0.0.1:%[2]d ssl;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_certificate %[1]s/cert.pem;
    ssl_certificate_key %[1]s/key.pem;
    ssl_client_certificate %[1]s/ca.pem;
    ssl_verify_client on;
    ssl_verify_depth 1;
    location = /health {
      default_type application/json;
      return 200 '%[3]s';
    }
    location / { return 404; }
  }
}
`, dir, port, NginxBody)
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(bin, "-p", dir, "-c", confPath, "-e", filepath.Join(dir, "error.log"))
	out := &syncbuf.Buffer{Max: 16 << 10}
	cmd.Stdout, cmd.Stderr = out, out
	proc, err := procgroup.Start(cmd)
	if err != nil {
		return "", fmt.Errorf("nginx: cannot start %s: %w", bin, err)
	}
	// SIGQUIT is nginx's graceful stop; the group takes the workers too.
	tb.Cleanup(func() { proc.Stop(syscall.SIGQUIT, 5*time.Second) })
	url = "https://127.0.0.1:" + strconv.Itoa(port)
	client := f.HTTPClient(tb, "nginx", 1)
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := client.Get(url + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return url, nil
			}
			err = fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		select {
		case <-proc.Exited():
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			return "", fmt.Errorf("nginx exited at start: %s %s", out.String(), log)
		default:
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("nginx did not answer on %s: %w", url, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
