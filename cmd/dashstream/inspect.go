package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/dashstream/dashstream/store"
	"github.com/dashstream/dashstream/store/bolt"
)

// inspectReport is what inspect prints (--json emits it as is).
type inspectReport struct {
	Path        string             `json:"path"`
	Epoch       string             `json:"epoch"`
	Generation  uint64             `json:"generation"`
	FileBytes   int64              `json:"file_bytes"`
	Records     int64              `json:"records"`
	RawBytes    int64              `json:"raw_bytes"`
	StoredBytes int64              `json:"stored_bytes"`
	Threads     int64              `json:"threads"`
	OldestTime  *time.Time         `json:"oldest_time"`
	Retention   inspectRetention   `json:"retention"`
	Partitions  []inspectPartition `json:"partitions"`
	Thread      *inspectThread     `json:"thread,omitempty"`
}

type inspectRetention struct {
	MaxRecordsPerPartition int64  `json:"max_records_per_partition"`
	MaxAge                 string `json:"max_age"`
	MaxAgeSeconds          int64  `json:"max_age_seconds"`
	MaxBytes               int64  `json:"max_bytes"`
	MaxFileBytes           int64  `json:"max_file_bytes"`
}

type inspectPartition struct {
	Partition   int32 `json:"partition"`
	Oldest      int64 `json:"oldest"`
	Latest      int64 `json:"latest"`
	Records     int64 `json:"records"`
	RawBytes    int64 `json:"raw_bytes"`
	StoredBytes int64 `json:"stored_bytes"`
	NextOffset  int64 `json:"next_offset"`
}

type inspectThread struct {
	ThreadID string              `json:"thread_id"`
	Run      *inspectRun         `json:"run"`
	Messages []inspectThreadItem `json:"messages"`
}

type inspectRun struct {
	GraphName string     `json:"graph_name"`
	Status    string     `json:"status"`
	StartedAt time.Time  `json:"started_at"`
	EndedAt   *time.Time `json:"ended_at"`
	Messages  int64      `json:"messages"`
	LastError string     `json:"last_error,omitempty"`
}

type inspectThreadItem struct {
	Sequence  uint64    `json:"sequence"`
	Type      string    `json:"type"`
	Partition int32     `json:"partition"`
	Offset    int64     `json:"offset"`
	Size      int       `json:"size"`
	Time      time.Time `json:"time"`
}

// inspectDataDir is the default data directory (DECISIONS D1):
// DASHSTREAM_DATA_DIR, else serve's default (defaultDataDir).
func inspectDataDir() string {
	if d := os.Getenv("DASHSTREAM_DATA_DIR"); d != "" {
		return d
	}
	if d, err := defaultDataDir(os.Getenv); err == nil {
		return d
	}
	return ""
}

// runInspect shows what a store file holds, opening it read-only. A server
// holding the file makes it fail with a message saying so.
func runInspect(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("inspect", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data-dir", inspectDataDir(), "data directory holding "+bolt.FileName+" (DASHSTREAM_DATA_DIR)")
	thread := fs.String("thread", "", "also list this thread's retained messages")
	asJSON := fs.Bool("json", false, "print JSON")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: dashstream inspect [--data-dir DIR] [--thread ID] [--json]")
		fmt.Fprintln(stderr, "\nShows the epoch, per-partition offsets and sizes, thread count, file size and retention of a store file.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *dataDir == "" {
		return fmt.Errorf("no data directory: set --data-dir or DASHSTREAM_DATA_DIR")
	}
	s, err := bolt.Open(filepath.Join(*dataDir, bolt.FileName), bolt.Options{ReadOnly: true, LockTimeout: 500 * time.Millisecond})
	if err != nil {
		return err
	}
	defer s.Close()
	rep, err := buildInspectReport(ctx, s, *thread)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	return printInspect(stdout, rep)
}

func buildInspectReport(ctx context.Context, s *bolt.Store, thread string) (*inspectReport, error) {
	st := s.Stats()
	rep := &inspectReport{
		Path:        s.Path(),
		Epoch:       st.Epoch,
		Generation:  st.Generation,
		FileBytes:   st.FileBytes,
		Records:     st.Records,
		RawBytes:    st.RawBytes,
		StoredBytes: st.StoredBytes,
		Threads:     st.Threads,
		Retention: inspectRetention{
			MaxRecordsPerPartition: st.Retention.MaxRecordsPerPartition,
			MaxAge:                 st.Retention.MaxAge.String(),
			MaxAgeSeconds:          int64(st.Retention.MaxAge / time.Second),
			MaxBytes:               st.Retention.MaxBytes,
			MaxFileBytes:           st.Retention.MaxFileBytes,
		},
		Partitions: []inspectPartition{},
	}
	if !st.OldestTime.IsZero() {
		t := st.OldestTime.UTC()
		rep.OldestTime = &t
	}
	for _, p := range st.Partitions {
		rep.Partitions = append(rep.Partitions, inspectPartition{
			Partition: p.Partition, Oldest: p.Oldest, Latest: p.Latest, Records: p.Records,
			RawBytes: p.RawBytes, StoredBytes: p.StoredBytes, NextOffset: p.NextOffset,
		})
	}
	if thread == "" {
		return rep, nil
	}
	th := &inspectThread{ThreadID: thread, Messages: []inspectThreadItem{}}
	if run, ok, err := s.Run(ctx, thread); err != nil {
		return nil, err
	} else if ok {
		ir := &inspectRun{GraphName: run.GraphName, Status: run.Status, StartedAt: run.StartedAt, Messages: run.Messages, LastError: run.LastError}
		if !run.EndedAt.IsZero() {
			e := run.EndedAt
			ir.EndedAt = &e
		}
		th.Run = ir
	}
	after := store.ThreadKey{}
	for {
		recs, more, err := s.ReadThread(ctx, thread, after, store.Limits{MaxRecords: 1000, MaxBytes: 16 << 20})
		if err != nil {
			return nil, err
		}
		for _, r := range recs {
			th.Messages = append(th.Messages, inspectThreadItem{
				Sequence: r.Key.Seq, Type: r.Index.Type.String(), Partition: r.Partition,
				Offset: r.Offset, Size: len(r.Payload), Time: r.Time.UTC(),
			})
			after = r.Key
		}
		if !more || len(recs) == 0 {
			break
		}
	}
	rep.Thread = th
	return rep, nil
}

func inspectBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, u := float64(n), "B"
	for _, next := range []string{"KiB", "MiB", "GiB", "TiB"} {
		if v < unit {
			break
		}
		v, u = v/unit, next
	}
	return fmt.Sprintf("%.1f %s", v, u)
}

func inspectLimit(n int64, bytes bool) string {
	switch {
	case n <= 0:
		return "none"
	case bytes:
		return inspectBytes(n)
	}
	return fmt.Sprint(n)
}

func printInspect(w io.Writer, rep *inspectReport) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "store\t%s\n", rep.Path)
	fmt.Fprintf(tw, "epoch\t%s (generation %d)\n", rep.Epoch, rep.Generation)
	fmt.Fprintf(tw, "file size\t%s (%d bytes)\n", inspectBytes(rep.FileBytes), rep.FileBytes)
	ratio := ""
	if rep.RawBytes > 0 {
		ratio = fmt.Sprintf(", stored/raw %.2f", float64(rep.StoredBytes)/float64(rep.RawBytes))
	}
	fmt.Fprintf(tw, "records\t%d (raw %s, stored %s%s)\n", rep.Records, inspectBytes(rep.RawBytes), inspectBytes(rep.StoredBytes), ratio)
	fmt.Fprintf(tw, "threads\t%d\n", rep.Threads)
	if rep.OldestTime != nil {
		fmt.Fprintf(tw, "oldest record\t%s\n", rep.OldestTime.Format(time.RFC3339))
	}
	r := rep.Retention
	age := "none"
	if r.MaxAgeSeconds > 0 {
		age = r.MaxAge
	}
	fmt.Fprintf(tw, "retention\tage %s, bytes %s, records/partition %s, file cap %s\n",
		age, inspectLimit(r.MaxBytes, true), inspectLimit(r.MaxRecordsPerPartition, false), inspectLimit(r.MaxFileBytes, true))
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "partition\toldest\tlatest\trecords\traw bytes\tstored bytes\tnext offset\t")
	if len(rep.Partitions) == 0 {
		fmt.Fprintln(tw, "(none)\t\t\t\t\t\t\t")
	}
	for _, p := range rep.Partitions {
		fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%d\t%d\t%d\t\n", p.Partition, p.Oldest, p.Latest, p.Records, p.RawBytes, p.StoredBytes, p.NextOffset)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if rep.Thread == nil {
		return nil
	}
	th := rep.Thread
	fmt.Fprintf(w, "\nthread %s", th.ThreadID)
	if th.Run != nil {
		fmt.Fprintf(w, ": run %s, graph %q, %d messages", th.Run.Status, th.Run.GraphName, th.Run.Messages)
		if th.Run.LastError != "" {
			fmt.Fprintf(w, ", last error %q", th.Run.LastError)
		}
	}
	fmt.Fprintf(w, " (%d retained)\n", len(th.Messages))
	if len(th.Messages) == 0 {
		return nil
	}
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "sequence\ttype\tpartition\toffset\tsize\ttime")
	for _, m := range th.Messages {
		fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%d\t%s\n", m.Sequence, m.Type, m.Partition, m.Offset, m.Size, m.Time.Format(time.RFC3339Nano))
	}
	return tw.Flush()
}
