package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dashstream/dashstream/wire/synth"
)

// produceFlags are the parsed `dashstream produce` flags.
type produceFlags struct {
	brokers     string
	topic       string
	runs        int
	concurrency int
	rate        float64
	duration    time.Duration
	seed        int64
	seedSet     bool
	shape       string
	minMessages int
	partitions  int
	out         string
	progress    time.Duration
	batchSize   int
	checkpoints int
}

func parseProduceFlags(args []string, stderr io.Writer) (*produceFlags, error) {
	f := &produceFlags{}
	fs := flag.NewFlagSet("produce", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: dashstream produce [flags]")
		fmt.Fprintln(stderr, "\nSends synthetic agent-graph telemetry (DashStream records) to Kafka, or with --out")
		fmt.Fprintln(stderr, "writes them to a corpus file. --runs N or --duration D ends it; with neither it runs")
		fmt.Fprintln(stderr, "until interrupted.\n\nflags:")
		fs.PrintDefaults()
	}
	fs.StringVar(&f.brokers, "brokers", "localhost:9092", "Kafka bootstrap brokers, comma-separated")
	fs.StringVar(&f.topic, "topic", "dashstream-quality", "Kafka topic")
	fs.IntVar(&f.runs, "runs", 0, "number of graph runs to produce (0 = no limit)")
	fs.IntVar(&f.concurrency, "concurrency", synth.DefaultConcurrency, "graph runs in flight at once (their records interleave)")
	fs.Float64Var(&f.rate, "rate", 0, "Kafka records per second, also with --out (0 = unlimited); it paces records, not messages: an EventBatch record carries many")
	fs.DurationVar(&f.duration, "duration", 0, "stop after this long (0 = no limit)")
	fs.Int64Var(&f.seed, "seed", 0, "RNG seed: the same seed gives the same runs (default: random, printed)")
	fs.StringVar(&f.shape, "shape", synth.ShapeMixed, "graph shape: "+strings.Join(synth.Shapes(), "|"))
	fs.IntVar(&f.minMessages, "min-messages", 0, "each run carries at least this many messages")
	fs.IntVar(&f.partitions, "partitions", synth.DefaultPartitions, "partition count the records of --out are assigned for (only with --out)")
	fs.StringVar(&f.out, "out", "", "write records to this corpus file instead of Kafka. Format (wire/synth): magic \"DSCORP1\\n\",\n"+
		"then per record: uvarint partition, uvarint key length, key, uvarint value length, value (the framed Kafka value);\n"+
		"uvarints are unsigned LEB128 (encoding/binary)")
	fs.DurationVar(&f.progress, "progress", 2*time.Second, "progress report interval on stderr (0 = off)")
	fs.IntVar(&f.batchSize, "batch-size", 0, "EventBatch size: 0 = some runs batch (by seed), 1 = never, N = always N")
	fs.IntVar(&f.checkpoints, "checkpoint-interval", 0, "Checkpoint every N diffs: 0 = some runs (by seed), -1 = never")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (produce takes only flags)", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	f.seedSet = set["seed"]
	switch {
	case f.runs < 0:
		return nil, fmt.Errorf("--runs must be >= 0, got %d", f.runs)
	case f.concurrency < 1:
		return nil, fmt.Errorf("--concurrency must be >= 1, got %d", f.concurrency)
	case f.rate < 0 || math.IsNaN(f.rate):
		return nil, fmt.Errorf("--rate must be >= 0, got %v", f.rate)
	case f.duration < 0:
		return nil, fmt.Errorf("--duration must be >= 0, got %v", f.duration)
	case !slices.Contains(synth.Shapes(), f.shape):
		return nil, fmt.Errorf("--shape must be one of %s, got %q", strings.Join(synth.Shapes(), ", "), f.shape)
	case f.minMessages < 0:
		return nil, fmt.Errorf("--min-messages must be >= 0, got %d", f.minMessages)
	case f.partitions < 1:
		return nil, fmt.Errorf("--partitions must be >= 1, got %d", f.partitions)
	case set["partitions"] && f.out == "":
		return nil, errors.New("--partitions applies only with --out (Kafka uses the topic's partition count)")
	case f.progress < 0:
		return nil, fmt.Errorf("--progress must be >= 0, got %v", f.progress)
	case f.batchSize < 0:
		return nil, fmt.Errorf("--batch-size must be >= 0, got %d", f.batchSize)
	case f.checkpoints < -1:
		return nil, fmt.Errorf("--checkpoint-interval must be >= -1, got %d", f.checkpoints)
	case f.out == "" && strings.TrimSpace(f.brokers) == "":
		return nil, errors.New("--brokers must name at least one broker")
	case f.out == "" && f.topic == "":
		return nil, errors.New("--topic must not be empty")
	}
	return f, nil
}

// runProduce implements `dashstream produce`.
func runProduce(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f, err := parseProduceFlags(args, stderr)
	if err != nil {
		return err
	}
	if !f.seedSet {
		f.seed = time.Now().UnixNano()
		fmt.Fprintf(stderr, "produce: seed %d\n", f.seed)
	}
	cfg := synth.Config{
		Seed:               f.seed,
		Runs:               f.runs,
		Concurrency:        f.concurrency,
		Shape:              f.shape,
		MinMessages:        f.minMessages,
		Partitions:         f.partitions,
		BatchSize:          f.batchSize,
		CheckpointInterval: f.checkpoints,
	}
	if f.out == "" {
		cfg.Now = time.Now
	}
	gen, err := synth.NewGenerator(cfg)
	if err != nil {
		return err
	}
	runCtx := ctx
	if f.duration > 0 {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeout(ctx, f.duration)
		defer cancel()
	}
	opts := synth.PumpOptions{Rate: f.rate, ProgressEvery: f.progress}
	if f.progress > 0 {
		opts.Progress = stderr
	}
	var stats synth.PumpStats
	if f.out != "" {
		stats, err = produceToFile(runCtx, f.out, gen, opts)
	} else {
		stats, err = produceToKafka(runCtx, f, gen, opts)
	}
	if err != nil {
		return err
	}
	dest := "topic " + f.topic
	if f.out != "" {
		dest = f.out
	}
	fmt.Fprintf(stdout, "produced %s to %s in %s\n", stats, dest, stats.Elapsed.Round(time.Millisecond))
	return nil
}

func produceToFile(ctx context.Context, path string, gen *synth.Generator, opts synth.PumpOptions) (synth.PumpStats, error) {
	fh, err := os.Create(path)
	if err != nil {
		return synth.PumpStats{}, fmt.Errorf("--out: %w", err)
	}
	stats, err := synth.WriteFile(ctx, fh, gen, opts)
	if cerr := fh.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("--out: close %s: %w", path, cerr)
	}
	return stats, err
}

func produceToKafka(ctx context.Context, f *produceFlags, gen *synth.Generator, opts synth.PumpOptions) (synth.PumpStats, error) {
	var seeds []string
	for _, b := range strings.Split(f.brokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			seeds = append(seeds, b)
		}
	}
	client, err := kgo.NewClient(
		kgo.SeedBrokers(seeds...),
		kgo.DefaultProduceTopic(f.topic),
		kgo.RecordPartitioner(synth.KafkaPartitioner()),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerBatchCompression(kgo.NoCompression()), // compression is per message (framing byte)
		kgo.MaxBufferedRecords(10_000),
		kgo.ProducerLinger(5*time.Millisecond),
		kgo.RecordDeliveryTimeout(30*time.Second),
		kgo.AllowAutoTopicCreation(),
	)
	if err != nil {
		return synth.PumpStats{}, fmt.Errorf("--brokers: %w", err)
	}
	defer client.Close()
	return synth.Produce(ctx, client, f.topic, gen, opts)
}
