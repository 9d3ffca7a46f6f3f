package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/ca-a2a/ca-a2a/internal/procgroup"
	"github.com/ca-a2a/ca-a2a/internal/testutil/syncbuf"
	"github.com/ca-a2a/ca-a2a/shared/agentapi"
	"github.com/ca-a2a/ca-a2a/shared/certload"
)

// The load generator of the process rows runs in a process of its own,
// so that the server's CPU time is the server's alone: `bench load` (the
// bench binary's subcommand) loads one URL over mTLS with vegeta, one
// attack per line it reads on stdin, and answers each with one line of
// results on stdout. wrk, the usual outside load generator, cannot present
// a client certificate, which every agent requires.

// LoadSpec is what `bench load` loads, from its flags.
type LoadSpec struct {
	URL string
	// Peer is the agent the server must be (verified by name).
	Peer string
	// CertPath, KeyPath and CAPath are the client's certificate and the
	// CA bundle it trusts.
	CertPath, KeyPath, CAPath string
	// TokenPath holds the bearer token (a file: not on the command line).
	TokenPath string
	// Body is POSTed when not empty; else the request is a GET.
	Body string
	// Connections is how many keep-alive connections to keep.
	Connections int
}

func (s LoadSpec) args() []string {
	return []string{"load", "-url", s.URL, "-peer", s.Peer, "-cert", s.CertPath, "-key", s.KeyPath, "-ca", s.CAPath,
		"-token-file", s.TokenPath, "-body", s.Body, "-connections", fmt.Sprint(s.Connections)}
}

// LoadCommand is one attack: Rate requests per second for Duration (Rate
// 0: Concurrency requests in flight, as fast as they are answered, at most
// MaxRequests).
type LoadCommand struct {
	Duration    time.Duration `json:"duration_ns"`
	Rate        int           `json:"rate"`
	Concurrency int           `json:"concurrency"`
	MaxRequests uint64        `json:"max_requests"`
}

// LoadMain is `bench load`: it reads LoadCommands from in, one JSON object
// a line, and writes a LoadResult line to out for each, until in ends.
func LoadMain(args []string, in io.Reader, out io.Writer) error {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	var s LoadSpec
	fs.StringVar(&s.URL, "url", "", "URL to load")
	fs.StringVar(&s.Peer, "peer", "", "agent the server must be")
	fs.StringVar(&s.CertPath, "cert", "", "client certificate (PEM)")
	fs.StringVar(&s.KeyPath, "key", "", "client key (PEM)")
	fs.StringVar(&s.CAPath, "ca", "", "CA bundle (PEM)")
	fs.StringVar(&s.TokenPath, "token-file", "", "file holding the bearer token")
	fs.StringVar(&s.Body, "body", "", "JSON body to POST (else GET)")
	fs.IntVar(&s.Connections, "connections", 8, "keep-alive connections")
	if err := fs.Parse(args); err != nil {
		return err
	}
	src, closeSrc, err := certload.Load(certload.Config{CertPath: s.CertPath, KeyPath: s.KeyPath, CAPath: s.CAPath},
		certload.Options{Usage: certload.UsageClient, PollInterval: time.Hour})
	if err != nil {
		return err
	}
	defer closeSrc()
	tr := &http.Transport{
		TLSClientConfig:     certload.ClientConfig(src, agentapi.AuthorizeAgent(s.Peer), certload.ClientOptions{ServerName: agentapi.DNSName(s.Peer)}),
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns:        s.Connections,
		MaxIdleConnsPerHost: s.Connections,
		MaxConnsPerHost:     s.Connections,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
	}
	defer tr.CloseIdleConnections()
	target := LoadTarget{Name: s.URL, Client: &http.Client{Transport: tr, Timeout: 10 * time.Second},
		Target: vegeta.Target{Method: http.MethodGet, URL: s.URL}}
	if s.Body != "" {
		token, err := os.ReadFile(s.TokenPath)
		if err != nil {
			return err
		}
		target.Target.Method, target.Target.Body = http.MethodPost, []byte(s.Body)
		target.Target.Header = http.Header{"Authorization": {"Bearer " + strings.TrimSpace(string(token))}, "Content-Type": {"application/json"}}
	}
	sc := bufio.NewScanner(in)
	enc := json.NewEncoder(out)
	for sc.Scan() {
		var c LoadCommand
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			return fmt.Errorf("bench load: command %q: %w", sc.Text(), err)
		}
		// Bounded whatever the command says.
		c.Duration = min(max(c.Duration, time.Millisecond), 5*time.Minute)
		c.Concurrency = min(max(c.Concurrency, 1), s.Connections)
		res := Load(context.Background(), []LoadTarget{target}, LoadOptions{Duration: c.Duration, Rounds: 1,
			Concurrency: c.Concurrency, MaxRequests: max(c.MaxRequests, 1), Rate: c.Rate})[0]
		if err := enc.Encode(res); err != nil {
			return err
		}
	}
	return sc.Err()
}

// loadProcess is a running `bench load`.
type loadProcess struct {
	proc *procgroup.Process
	in   io.WriteCloser
	out  *bufio.Scanner
	log  *syncbuf.Buffer
}

// startLoad runs `bin load` for spec until tb ends.
func startLoad(tb testing.TB, bin string, spec LoadSpec) *loadProcess {
	tb.Helper()
	cmd := exec.Command(bin, spec.args()...)
	in, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	l := &loadProcess{in: in, out: bufio.NewScanner(out), log: &syncbuf.Buffer{Max: 8 << 10}}
	cmd.Stderr = l.log
	// Dies with this process even when no cleanup runs (a -timeout panic).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if l.proc, err = procgroup.Start(cmd); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = in.Close(); l.proc.Stop(syscall.SIGTERM, 5*time.Second) })
	return l
}

// run sends c and waits for its result (at most c.Duration and a minute).
func (l *loadProcess) run(c LoadCommand) (LoadResult, error) {
	b, _ := json.Marshal(c)
	if _, err := l.in.Write(append(b, '\n')); err != nil {
		return LoadResult{}, fmt.Errorf("bench load: %w (%s)", err, l.log.String())
	}
	type answer struct {
		res LoadResult
		err error
	}
	done := make(chan answer, 1)
	go func() {
		if !l.out.Scan() {
			done <- answer{err: errors.Join(errors.New("bench load ended"), l.out.Err())}
			return
		}
		var a answer
		a.err = json.Unmarshal(l.out.Bytes(), &a.res)
		done <- a
	}()
	select {
	case a := <-done:
		if a.err != nil {
			return LoadResult{}, fmt.Errorf("bench load: %w (%s)", a.err, l.log.String())
		}
		return a.res, nil
	case <-time.After(c.Duration + time.Minute):
		return LoadResult{}, fmt.Errorf("bench load: no answer within %s (%s)", c.Duration+time.Minute, l.log.String())
	}
}
