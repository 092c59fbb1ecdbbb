package synth

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/dashstream/dashstream/wire"
	"github.com/dashstream/dashstream/wire/pb"
)

// Defaults shared by the generator, Corpus and `dashstream produce`.
const (
	DefaultConcurrency = 8
	DefaultPartitions  = 3
)

// syntheticEpoch is where the synthetic clock of seeded output starts
// (2026-01-01T00:00:00Z), shifted by the seed.
const syntheticEpoch = 1767225600 * int64(time.Second/time.Microsecond)

// Record is one Kafka record: Key = thread id, Value = framed DashStream
// payload (wire.Encode), Partition = Partition(Key, Config.Partitions).
type Record struct {
	Key       []byte
	Value     []byte
	Partition int32
}

// Config shapes the generated telemetry. The zero value (plus Runs) is the
// corpus configuration.
type Config struct {
	// Seed makes the output deterministic: the same Config yields
	// byte-identical records.
	Seed int64
	// Runs is the number of graph runs to produce; 0 means endless.
	Runs int
	// Concurrency is the number of runs in flight whose records are
	// interleaved (default DefaultConcurrency).
	Concurrency int
	// Shape is react, pipeline, router, large or mixed (default mixed).
	Shape string
	// MinMessages makes every run carry at least this many sequenced
	// messages (EventBatch inner events count one each), by looping longer;
	// a failing run fails only after reaching it.
	MinMessages int
	// Partitions is the partition count Record.Partition is computed for
	// (default DefaultPartitions).
	Partitions int
	// Tenant is Header.tenant_id (default "default").
	Tenant string
	// BatchSize: 0 lets each run pick (about a quarter batch events into
	// EventBatches of 4–24), 1 disables batching, N > 1 batches every run
	// with size N.
	BatchSize int
	// CheckpointInterval: 0 lets each run pick (about a quarter checkpoint
	// every 2–6 diffs), -1 disables checkpoints, N > 0 checkpoints every run
	// after every N-th StateDiff.
	CheckpointInterval int
	// Now, when set, stamps every header (and ExecutionTrace times) with
	// the wall clock at Next instead of the synthetic clock: use it for live
	// sending. Output is then no longer byte-reproducible.
	Now func() time.Time
}

// Generator produces the records of Config.Runs graph runs, Concurrency of
// them in flight at once, interleaved by their synthetic timestamps. It is
// not safe for concurrent use.
type Generator struct {
	cfg      Config
	started  int
	finished int
	active   []*run
	now      int64 // synthetic time of the last record handed out
	records  int64
	messages int64
	err      error
}

// NewGenerator validates cfg, fills in defaults and returns a generator.
func NewGenerator(cfg Config) (*Generator, error) {
	if cfg.Runs < 0 {
		return nil, fmt.Errorf("synth: runs must be >= 0, got %d", cfg.Runs)
	}
	if cfg.Concurrency < 0 {
		return nil, fmt.Errorf("synth: concurrency must be >= 1, got %d", cfg.Concurrency)
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.Shape == "" {
		cfg.Shape = ShapeMixed
	}
	if !slices.Contains(Shapes(), cfg.Shape) {
		return nil, fmt.Errorf("synth: unknown shape %q (want one of %v)", cfg.Shape, Shapes())
	}
	if cfg.MinMessages < 0 {
		return nil, fmt.Errorf("synth: min-messages must be >= 0, got %d", cfg.MinMessages)
	}
	if cfg.Partitions < 0 {
		return nil, fmt.Errorf("synth: partitions must be >= 1, got %d", cfg.Partitions)
	}
	if cfg.Partitions == 0 {
		cfg.Partitions = DefaultPartitions
	}
	if cfg.BatchSize < 0 {
		return nil, fmt.Errorf("synth: batch size must be >= 0, got %d", cfg.BatchSize)
	}
	if cfg.CheckpointInterval < -1 {
		return nil, fmt.Errorf("synth: checkpoint interval must be >= -1, got %d", cfg.CheckpointInterval)
	}
	if cfg.Tenant == "" {
		cfg.Tenant = defaultTenant
	}
	seedShift := int64(uint64(cfg.Seed)%(24*365)) * int64(time.Hour/time.Microsecond)
	return &Generator{cfg: cfg, now: syntheticEpoch + seedShift}, nil
}

// Config returns the configuration with defaults filled in.
func (g *Generator) Config() Config { return g.cfg }

// Err returns the error that stopped Next early, if any.
func (g *Generator) Err() error { return g.err }

// RunsStarted counts runs begun (generated and in flight or done).
func (g *Generator) RunsStarted() int { return g.started }

// RunsDone counts runs whose last record Next has returned.
func (g *Generator) RunsDone() int { return g.finished }

// Records counts the records Next has returned.
func (g *Generator) Records() int64 { return g.records }

// Messages counts the messages in those records (EventBatch inner events
// one each, the envelope not at all).
func (g *Generator) Messages() int64 { return g.messages }

// fill starts runs until Concurrency are in flight or Runs are exhausted.
func (g *Generator) fill() {
	for len(g.active) < g.cfg.Concurrency && (g.cfg.Runs == 0 || g.started < g.cfg.Runs) {
		idx := g.started
		r := newRun(idx, g.cfg.Seed, 0, &g.cfg)
		start := g.now + int64(r.t.between(0, 1500))*1000
		r.start, r.clock = start, start
		g.started++
		if err := r.generate(); err != nil {
			g.err = err
			return
		}
		if len(r.items) == 0 {
			g.finished++
			continue
		}
		g.active = append(g.active, r)
	}
}

// Next returns the next record in interleaved order across the runs in
// flight, or false when Runs are done (never, for Runs 0) or an error
// stopped generation (see Err).
func (g *Generator) Next() (Record, bool) {
	m, key, idx, ok := g.nextMessage()
	if !ok {
		return Record{}, false
	}
	val, err := encode(m)
	if err != nil {
		g.err = fmt.Errorf("synth: encode record of run %d: %w", idx, err)
		return Record{}, false
	}
	g.records++
	return Record{Key: key, Value: val, Partition: Partition(key, g.cfg.Partitions)}, true
}

// nextMessage picks the next message (not yet encoded), its key and its
// run index.
func (g *Generator) nextMessage() (*pb.DashStreamMessage, []byte, int, bool) {
	if g.err != nil {
		return nil, nil, 0, false
	}
	g.fill()
	if g.err != nil || len(g.active) == 0 {
		return nil, nil, 0, false
	}
	best := 0
	for i, r := range g.active[1:] {
		if r.items[r.pos].ts < g.active[best].items[g.active[best].pos].ts {
			best = i + 1
		}
	}
	r := g.active[best]
	it := r.items[r.pos]
	r.items[r.pos] = item{} // let the message be collected
	r.pos++
	if r.pos == len(r.items) {
		g.active = append(g.active[:best], g.active[best+1:]...)
		g.finished++
	}
	if it.ts > g.now {
		g.now = it.ts
	}
	if g.cfg.Now != nil {
		restamp(r, it.msg, g.cfg.Now().UnixMicro())
	}
	g.messages += int64(messageCount(it.msg))
	return it.msg, []byte(r.thread), r.idx, true
}

// maxMessageSize is the reference producer's limit on an encoded message.
const maxMessageSize = 1 << 20

// encode frames a message as the reference producer does, with its 1 MiB
// limit.
func encode(m *pb.DashStreamMessage) ([]byte, error) {
	return wire.EncodeWith(m, wire.EncodeOptions{MaxMessageSize: maxMessageSize})
}

// restamp replaces synthetic times with the wall clock (live mode).
func restamp(r *run, m *pb.DashStreamMessage, nowUs int64) {
	if r.liveStart == 0 {
		r.liveStart = nowUs
	}
	switch x := m.Message.(type) {
	case *pb.DashStreamMessage_Event:
		x.Event.Header.TimestampUs = nowUs
	case *pb.DashStreamMessage_EventBatch:
		x.EventBatch.Header.TimestampUs = nowUs
		for _, e := range x.EventBatch.Events {
			e.Header.TimestampUs = nowUs
		}
	case *pb.DashStreamMessage_StateDiff:
		x.StateDiff.Header.TimestampUs = nowUs
	case *pb.DashStreamMessage_TokenChunk:
		x.TokenChunk.Header.TimestampUs = nowUs
	case *pb.DashStreamMessage_ToolExecution:
		x.ToolExecution.Header.TimestampUs = nowUs
	case *pb.DashStreamMessage_Checkpoint:
		x.Checkpoint.Header.TimestampUs = nowUs
	case *pb.DashStreamMessage_Metrics:
		x.Metrics.Header.TimestampUs = nowUs
	case *pb.DashStreamMessage_Error:
		x.Error.Header.TimestampUs = nowUs
	case *pb.DashStreamMessage_ExecutionTrace:
		x.ExecutionTrace.Header.TimestampUs = nowUs
		x.ExecutionTrace.StartedAt = iso(r.liveStart)
		x.ExecutionTrace.EndedAt = iso(nowUs)
	}
}

// messageCount is the number of messages a record carries.
func messageCount(m *pb.DashStreamMessage) int {
	if b, ok := m.Message.(*pb.DashStreamMessage_EventBatch); ok {
		return len(b.EventBatch.Events)
	}
	return 1
}

// Corpus returns the records of `dashstream produce --seed seed --runs runs
// --out FILE`: all defaults, mixed shapes.
func Corpus(seed int64, runs int) ([]Record, error) {
	if runs <= 0 {
		return nil, errors.New("synth: corpus needs runs > 0")
	}
	return Generate(Config{Seed: seed, Runs: runs})
}

// Generate returns every record of a finite configuration (Runs > 0),
// the same as calling Next until it returns false, with the encoding
// spread over GOMAXPROCS goroutines.
func Generate(cfg Config) ([]Record, error) {
	if cfg.Runs <= 0 {
		return nil, errors.New("synth: Generate needs Runs > 0")
	}
	g, err := NewGenerator(cfg)
	if err != nil {
		return nil, err
	}
	var msgs []*pb.DashStreamMessage
	var out []Record
	for {
		m, key, _, ok := g.nextMessage()
		if !ok {
			break
		}
		msgs = append(msgs, m)
		out = append(out, Record{Key: key, Partition: Partition(key, g.cfg.Partitions)})
	}
	if err := g.Err(); err != nil {
		return nil, err
	}
	workers := max(1, runtime.GOMAXPROCS(0))
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(msgs); i += workers {
				v, err := encode(msgs[i])
				if err != nil {
					errs[w] = fmt.Errorf("synth: encode record %d: %w", i, err)
					return
				}
				out[i].Value = v
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	g.records = int64(len(out))
	return out, nil
}
