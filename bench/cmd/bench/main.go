// Command bench runs the measurements of package bench on loopback and
// writes results.md and results.json (go run ./bench/cmd/bench; make bench).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/ca-a2a/ca-a2a/bench"
	"github.com/ca-a2a/ca-a2a/internal/sandbox"
)

func main() {
	// Row 9 parses in workers that are this binary re-executed.
	sandbox.Main()
	// `bench load`: the load generator of the process rows, run by the
	// driver as a child process (bench.LoadMain).
	if len(os.Args) > 1 && os.Args[1] == "load" {
		if err := bench.LoadMain(os.Args[2:], os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "bench load:", err)
			os.Exit(1)
		}
		return
	}
	o := bench.Full()
	out := flag.String("out", "bench/results", "directory for results.md and results.json")
	short := flag.Bool("short", false, "tiny settings: checks that everything runs, figures mean nothing")
	flag.DurationVar(&o.Duration, "duration", o.Duration, "measured load per target (rows 1 and 6)")
	flag.IntVar(&o.Concurrency, "concurrency", o.Concurrency, "requests in flight, pinned")
	flag.StringVar(&o.Nginx, "nginx", o.Nginx, `nginx binary ("" looks it up, "off" skips row 6)`)
	flag.BoolVar(&o.Moto, "moto", o.Moto, "keep the Lambda's secrets in moto_server (else in memory)")
	flag.DurationVar(&o.ProcessDuration, "process-duration", o.ProcessDuration, "measured load per agent process (rows 10a, 10b)")
	flag.IntVar(&o.ProcessRate, "process-rate", o.ProcessRate, "requests/s per agent process, rows 10a, 10b (0: unpaced)")
	flag.IntVar(&o.PipelineDocs, "pipeline-docs", o.PipelineDocs, "documents per concurrency (rows 12, 13)")
	only := flag.String("only", "", "comma-separated row id prefixes: run only the steps with such rows (e.g. 10,12)")
	flag.Parse()
	if *short {
		s := bench.Short()
		s.Nginx = o.Nginx
		o = s
	}
	if *only != "" {
		o.Only = strings.Split(*only, ",")
	}
	o.Log = os.Stderr
	// The whole run is bounded too, whatever the settings.
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	rep := bench.Run(ctx, o)
	if err := rep.Write(*out); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	fmt.Print(rep.Markdown())
	fmt.Fprintf(os.Stderr, "bench: wrote %s/results.md and results.json\n", *out)
	for _, r := range rep.Rows {
		if r.Error != "" {
			os.Exit(1)
		}
	}
}
