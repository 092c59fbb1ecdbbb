package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/dashstream/dashstream/cmd/dashstream/internal/bench"
)

// runBench is `dashstream bench`: the benchmark suite (table or --json),
// or the soak (--soak). `bench __client` is the WebSocket client process
// the suite starts for itself; it is not meant to be run by hand.
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "__client" {
		return bench.RunClientProcess(ctx, args[1:], os.Stdin, stdout)
	}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	quick := fs.Bool("quick", false, "CI size: the whole suite in about 3 minutes on 2 cores")
	asJSON := fs.Bool("json", false, "print one JSON object on stdout instead of the table")
	only := fs.String("only", "", "comma-separated subset of: "+strings.Join(bench.AllBenchmarks(), ","))
	profile := fs.String("profile", "", "write CPU profiles of the server side of fan-out and replay to this directory")
	dir := fs.String("dir", "", "scratch directory (default: a temporary one, removed afterwards)")
	soak := fs.Duration("soak", 0, "run the soak for this long instead of the suite (e.g. 10m; CI uses 60s)")
	out := fs.String("out", "soak-out", "soak: directory for soak.csv and soak.json")
	soakRate := fs.Float64("soak-rate", 1000, "soak: records per second produced (synthetic agent-graph telemetry)")
	soakRetention := fs.String("soak-retention", "", "soak: DASHSTREAM_RETENTION_BYTES of the server (default: what a quarter of the run stores)")
	soakAge := fs.Duration("soak-age", 0, "soak: DASHSTREAM_RETENTION_AGE of the server (default: the server's)")
	soakClients := fs.Int("soak-clients", 10, "soak: background batched WebSocket clients")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: dashstream bench [flags]\n\n")
		fmt.Fprintf(stderr, "Runs the benchmark suite: every figure against a baseline measured in the same run\n")
		fmt.Fprintf(stderr, "(progress on stderr, then a table, or one JSON object with --json). The exit status\n")
		fmt.Fprintf(stderr, "is non-zero only on error, never on a missed target. With --soak, runs constant\n")
		fmt.Fprintf(stderr, "load through `dashstream serve` with retention active and records file size, RSS,\n")
		fmt.Fprintf(stderr, "goroutines and latency over time (scripts/soak.sh also draws the chart).\n\nflags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *soak > 0 {
		return bench.RunSoak(ctx, bench.SoakOptions{Duration: *soak, OutDir: *out, Rate: *soakRate,
			RetentionBytes: *soakRetention, RetentionAge: *soakAge, Clients: *soakClients, Dir: *dir, Progress: stderr}, stdout)
	}
	var names []string
	if *only != "" {
		for _, n := range strings.Split(*only, ",") {
			names = append(names, strings.TrimSpace(n))
		}
	}
	res, err := bench.Run(ctx, bench.Options{Quick: *quick, Only: names, Dir: *dir, ProfileDir: *profile, Progress: stderr})
	if err != nil {
		return err
	}
	if *asJSON {
		return res.WriteJSON(stdout)
	}
	return res.WriteTable(stdout)
}
