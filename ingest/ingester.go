package ingest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dashstream/dashstream/store"
	"github.com/dashstream/dashstream/wire"
)

// Timing constants.
const (
	startupAttempts     = 5                // broker connection attempts at startup (reference §1.2)
	metadataTimeout     = 10 * time.Second // one metadata request
	boundsTimeout       = 5 * time.Second  // one start/end offsets listing while running
	appendTimeout       = 60 * time.Second // one store append (never cancelled mid-commit)
	maxAppendBackoff    = 5 * time.Second
	infraErrorSleep     = 250 * time.Millisecond // after a consumer error (reference §5.4)
	drainBudget         = 10 * time.Second       // shutdown drain of buffered fetches
	dlqShutdownWait     = 5 * time.Second
	pausedLogInterval   = 30 * time.Second
	fetchMaxWait        = time.Second
	topicWaitLogEvery   = 30 * time.Second
	maxTopicWaitBackoff = 5 * time.Second
)

// errResync means the store's offsets and ingest's view disagree
// (store.ErrOffsetOrder); ingest reloads the offsets from the store and
// restarts consumption there.
var errResync = errors.New("store offsets changed under ingest")

// SourceNotifier is an optional extension of Notifier: when the Notifier
// also implements it, SourceChanged is called after ingest started a new
// source in the store (topic recreated or log truncated, DECISIONS D2),
// with the store's new epoch.
type SourceNotifier interface {
	SourceChanged(epoch string)
}

// Ingester consumes every partition of one Kafka topic into a store,
// exactly once per offset across crashes: each poll's records, the skipped
// offset ranges and the next offsets are written in one Append, and
// consumption always resumes from the store's next offsets (never from a
// consumer group).
//
// Decode-error policy (KAFKA_ON_DECODE_ERROR): with skip, a record that is
// missing, oversized or does not decode is counted, DLQ'd (missing ones
// excepted) and recorded as an `invalid` skipped offset, so a restart does
// not read it again. With pause, such a record of new data stops its
// partition at that record: nothing from it on is appended, the other
// partitions go on, and Status names the partition and offset. Old data
// (below the session head) never pauses. The operator's way out of a pause
// is a restart with either policy (fix the producer first): the record is
// then below the new session head, so it is old data (with
// KAFKA_OLD_DATA_USE_TIMESTAMP: once older than the grace period), counted
// as an old-data error and recorded as an `invalid` skipped offset. It
// does not pause again and is not DLQ'd again: it was DLQ'd once, when the
// pause happened (missing records never are). See TestIngestPausePolicy.
//
// When the store refuses an append (store.ErrFull or any other error),
// ingest pauses fetching on every partition and retries the same batch
// with backoff until it succeeds or Run's context ends; no fetched record
// is dropped.
type Ingester struct {
	cfg    Config
	db     store.Store
	notify Notifier
	m      *Metrics
	log    *slog.Logger
	opts   []kgo.Opt

	admin *kgo.Client
	adm   *kadm.Client
	dlq   *dlqSender
	ids   idFinder
	// extract indexes a Kafka value (wire.Extract; replaceable in tests,
	// but records say Extracted, so a replacement must agree with it).
	extract func(payload []byte, maxPayload int) (wire.Index, error)
	heads   *sessionHeads
	seq     *SequenceValidator

	// Owned by the Run goroutine.
	cons         *kgo.Client
	consumed     map[int32]bool
	next         map[int32]int64 // committed next offsets (the store's view)
	topicID      [16]byte
	decodePaused map[int32]int64
	storePaused  bool
	msgCount     uint64
	oldLogged    uint64

	wakeMu     sync.Mutex
	wakeReason string
	pollCancel context.CancelFunc

	mu        sync.Mutex // guards stat
	stat      statusState
	cnt       counters
	msgWindow window
	errWindow window
	errLog    *rateLimiter
	warnLog   *rateLimiter

	started atomic.Bool
}

// New validates cfg, builds the Kafka clients (nothing connects yet) and
// returns an Ingester writing into st. Run it, or Close it. notify may be nil. logger nil means
// slog.Default().
func New(cfg Config, st store.Store, notify Notifier, metrics *Metrics, logger *slog.Logger) (*Ingester, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("ingest: %w", err)
	}
	if st == nil || metrics == nil {
		return nil, errors.New("ingest: store and metrics are required")
	}
	if logger == nil {
		logger = slog.Default()
	}
	logger = logger.With("component", "ingest", "topic", cfg.Topic)
	opts, err := ClientOpts(cfg, logger)
	if err != nil {
		return nil, fmt.Errorf("ingest: %w", err)
	}
	i := &Ingester{
		cfg: cfg, db: st, notify: notify, m: metrics, log: logger, opts: opts,
		ids:          newIDFinder(cfg.MaxPayloadBytes),
		extract:      wire.Extract,
		seq:          NewSequenceValidator(0),
		consumed:     map[int32]bool{},
		next:         map[int32]int64{},
		decodePaused: map[int32]int64{},
		errLog:       newRateLimiter(5, 20),
		warnLog:      newRateLimiter(1, 10),
	}
	i.stat.decodePaused = map[int32]int64{}
	i.stat.next = map[int32]int64{}
	i.stat.advanced = map[int32]time.Time{}
	i.heads = newSessionHeads(metrics, cfg.OldDataUseTimestamp, cfg.OldDataGrace, i.lazyHead)

	// kgo.NewClient validates options and never dials, so it does not
	// retry: the retry histograms observe 0 for client creation.
	// The admin client serves metadata from a cache younger than its
	// minimum age; keep it below the check interval so that partition
	// discovery and topic-id checks see fresh metadata.
	i.admin, err = kgo.NewClient(append(slices.Clone(opts), kgo.ClientID("dashstream-admin"),
		kgo.MetadataMinAge(min(cfg.LagCheckInterval/2, 5*time.Second)))...)
	if err != nil {
		return nil, fmt.Errorf("ingest: admin client: %w", err)
	}
	i.adm = kadm.NewClient(i.admin)
	metrics.RetryCount.WithLabelValues(RetryConsumerCreate).Observe(0)
	prod, err := kgo.NewClient(append(slices.Clone(opts),
		kgo.ClientID("dashstream-dlq"),
		kgo.RecordDeliveryTimeout(cfg.DLQSendTimeout),
		kgo.DisableIdempotentWrite(),
		kgo.AllowAutoTopicCreation(),
		kgo.ProducerLinger(5*time.Millisecond),
	)...)
	if err != nil {
		i.admin.Close()
		return nil, fmt.Errorf("ingest: DLQ producer: %w", err)
	}
	metrics.RetryCount.WithLabelValues(RetryDLQCreate).Observe(0)
	i.dlq = newDLQSender(prod, cfg.DLQTopic, max(0, cfg.MaxConcurrentDLQSends), cfg.DLQSendTimeout, metrics, logger)
	return i, nil
}

// Close releases the Kafka clients of an Ingester whose Run was never
// called. After Run has been called it does nothing: Run closes them.
func (i *Ingester) Close() {
	if i.started.CompareAndSwap(false, true) {
		i.closeClients()
	}
}

// Run consumes until ctx ends, then drains what was already fetched, makes
// the final append and closes the Kafka clients. It returns nil after a
// clean shutdown, or the error that stopped ingest (the broker unreachable
// at startup, the store closed). Run may be called once.
func (i *Ingester) Run(ctx context.Context) error {
	if !i.started.CompareAndSwap(false, true) {
		return errors.New("ingest: Run called twice")
	}
	defer i.closeClients()
	if err := i.startup(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	i.setRunning(true)
	defer i.setRunning(false)

	monCtx, stopMon := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { i.monitor(monCtx) })
	err := i.loop(ctx)
	stopMon()
	wg.Wait()
	i.heads.wait()
	return err
}

func (i *Ingester) setRunning(v bool) {
	i.mu.Lock()
	i.stat.running = v
	i.mu.Unlock()
}

func (i *Ingester) closeClients() {
	if i.cons != nil {
		i.cons.Close()
		i.cons = nil
	}
	i.dlq.close(dlqShutdownWait)
	i.admin.Close()
}

// startup waits for the topic, aligns the store with it (D11), fetches the
// session heads and starts the consumer.
func (i *Ingester) startup(ctx context.Context) error {
	if _, err := i.waitForTopic(ctx); err != nil {
		return err
	}
	i.next = i.db.IngestOffsets()
	i.publishNext(nil)
	if err := i.reconcile(ctx, "startup"); err != nil {
		return err
	}
	if i.cons == nil {
		if err := i.startConsumer(ctx, true); err != nil {
			return err
		}
	}
	return nil
}

// waitForTopic fetches the topic's metadata, retrying: a broker that
// cannot be reached after startupAttempts attempts (2, 4, 8, 16 s apart) is
// fatal; a topic that does not exist yet is waited for.
func (i *Ingester) waitForTopic(ctx context.Context) (kadm.TopicDetail, error) {
	failures := 0
	backoff := time.Second
	lastLog := time.Time{}
	for {
		td, err := i.describeTopic(ctx)
		if err == nil {
			i.m.RetryCount.WithLabelValues(RetrySubscribe).Observe(float64(failures))
			return td, nil
		}
		if ctx.Err() != nil {
			return kadm.TopicDetail{}, ctx.Err()
		}
		var wait time.Duration
		if errors.Is(err, kerr.UnknownTopicOrPartition) {
			if time.Since(lastLog) > topicWaitLogEvery {
				i.log.Warn("waiting for the Kafka topic to exist", "err", err)
				lastLog = time.Now()
			}
			wait = backoff
			backoff = min(backoff*2, maxTopicWaitBackoff)
		} else {
			failures++
			i.noteInfraError(err)
			if failures >= startupAttempts {
				i.m.RetryCount.WithLabelValues(RetrySubscribe).Observe(float64(failures))
				return kadm.TopicDetail{}, fmt.Errorf("ingest: Kafka brokers %v unreachable after %d attempts: %w", i.cfg.Brokers, failures, err)
			}
			wait = time.Duration(1<<failures) * time.Second
			i.log.Warn("Kafka metadata request failed, retrying", "attempt", failures, "retry_in", wait, "err", err)
		}
		select {
		case <-ctx.Done():
			return kadm.TopicDetail{}, ctx.Err()
		case <-time.After(wait):
		}
	}
}

// describeTopic returns the topic's metadata (id and partitions).
func (i *Ingester) describeTopic(ctx context.Context) (kadm.TopicDetail, error) {
	mctx, cancel := context.WithTimeout(ctx, metadataTimeout)
	defer cancel()
	md, err := i.adm.Metadata(mctx, i.cfg.Topic)
	if err != nil {
		return kadm.TopicDetail{}, fmt.Errorf("metadata of topic %s: %w", i.cfg.Topic, err)
	}
	td, ok := md.Topics[i.cfg.Topic]
	if !ok {
		return kadm.TopicDetail{}, fmt.Errorf("metadata of topic %s: %w", i.cfg.Topic, kerr.UnknownTopicOrPartition)
	}
	if td.Err != nil {
		return kadm.TopicDetail{}, fmt.Errorf("metadata of topic %s: %w", i.cfg.Topic, td.Err)
	}
	if len(td.Partitions) == 0 {
		return kadm.TopicDetail{}, fmt.Errorf("metadata of topic %s: no partitions: %w", i.cfg.Topic, kerr.UnknownTopicOrPartition)
	}
	return td, nil
}

// listBounds returns the log start and end offsets of every partition
// that answered.
func (i *Ingester) listBounds(ctx context.Context) (starts, ends map[int32]int64, err error) {
	conv := func(l kadm.ListedOffsets) map[int32]int64 {
		out := map[int32]int64{}
		for p, o := range l[i.cfg.Topic] {
			if o.Err == nil && o.Offset >= 0 {
				out[p] = o.Offset
			}
		}
		return out
	}
	s, err := i.adm.ListStartOffsets(ctx, i.cfg.Topic)
	if err != nil {
		return nil, nil, fmt.Errorf("list start offsets: %w", err)
	}
	e, err := i.adm.ListEndOffsets(ctx, i.cfg.Topic)
	if err != nil {
		return nil, nil, fmt.Errorf("list end offsets: %w", err)
	}
	return conv(s), conv(e), nil
}

// lazyHead is the one-shot watermark fetch for a partition first seen
// without a session head (reference §5.3, M-1014).
func (i *Ingester) lazyHead(ctx context.Context, p int32) (int64, bool) {
	l, err := i.adm.ListEndOffsets(ctx, i.cfg.Topic)
	if err != nil {
		i.log.Debug("lazy watermark fetch failed", "partition", p, "err", err)
		return 0, false
	}
	o, ok := l.Lookup(i.cfg.Topic, p)
	if !ok || o.Err != nil {
		return 0, false
	}
	return o.Offset, true
}

// startOffset is where consumption of p starts: the store's next offset,
// else the reset policy (at startup or after a new source) or the log
// start (partitions that appear while running: everything in them is new).
func (i *Ingester) startOffset(p int32, atStartup bool) kgo.Offset {
	if n, ok := i.next[p]; ok {
		return kgo.NewOffset().At(n)
	}
	if atStartup && i.cfg.AutoOffsetReset == ResetLatest {
		return kgo.NewOffset().AtEnd()
	}
	return kgo.NewOffset().AtStart()
}

// startConsumer (re)creates the consumer over every known partition.
func (i *Ingester) startConsumer(ctx context.Context, atStartup bool) error {
	if i.cons != nil {
		i.cons.Close()
		i.cons = nil
	}
	td, err := i.describeTopic(ctx)
	if err != nil {
		return fmt.Errorf("ingest: start consumer: %w", err)
	}
	offsets := map[int32]kgo.Offset{}
	i.consumed = map[int32]bool{}
	for _, p := range td.Partitions.Numbers() {
		offsets[p] = i.startOffset(p, atStartup)
		i.consumed[p] = true
	}
	partBytes := int32(min(max(i.cfg.BatchMaxBytes, 1<<20), 64<<20))
	cl, err := kgo.NewClient(append(slices.Clone(i.opts),
		kgo.ClientID("dashstream-ingest"),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{i.cfg.Topic: offsets}),
		// Out of range below the log start resumes at the log start: the
		// store is the resume point, so nothing still in Kafka is skipped.
		// The gap is recorded as `evicted` by the pipeline (D11).
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxPartitionBytes(partBytes),
		kgo.FetchMaxBytes(max(2*partBytes, 16<<20)),
		kgo.FetchMaxWait(fetchMaxWait),
		kgo.WithHooks(connectHook{i}),
	)...)
	if err != nil {
		return fmt.Errorf("ingest: consumer: %w", err)
	}
	i.cons = cl
	i.publishConsumed()
	if len(i.decodePaused) > 0 {
		ps := slices.Collect(maps.Keys(i.decodePaused))
		cl.PauseFetchPartitions(map[string][]int32{i.cfg.Topic: ps})
	}
	i.log.Info("consuming", "partitions", len(offsets), "offsets", fmtOffsets(offsets))
	return nil
}

// publishConsumed copies the consumed partitions for the monitor.
func (i *Ingester) publishConsumed() {
	i.mu.Lock()
	i.stat.consumed = maps.Clone(i.consumed)
	i.mu.Unlock()
}

func fmtOffsets(m map[int32]kgo.Offset) string {
	ps := slices.Sorted(maps.Keys(m))
	s := ""
	for _, p := range ps {
		if s != "" {
			s += " "
		}
		s += fmt.Sprintf("%d:%s", p, m[p].String())
	}
	return s
}

// connectHook counts failed broker connections as infrastructure errors.
type connectHook struct{ i *Ingester }

func (h connectHook) OnBrokerConnect(_ kgo.BrokerMetadata, _ time.Duration, _ net.Conn, err error) {
	if err != nil && !errors.Is(err, context.Canceled) {
		h.i.noteInfraError(err)
	}
}

// noteInfraError counts a consumer or connection error (reference §5.4
// step 8).
func (i *Ingester) noteInfraError(err error) {
	i.m.InfraErrors.Inc()
	i.m.KafkaErrorsByType.WithLabelValues(classifyKafkaError(err)).Inc()
	i.m.lastInfraError.Store(time.Now().UnixNano())
	i.cnt.infra.Add(1)
	i.mu.Lock()
	i.stat.lastInfraText = err.Error()
	i.mu.Unlock()
	if i.warnLog.allow() {
		i.log.Warn("Kafka error", "err", err, "error_type", classifyKafkaError(err))
	}
}

// wake asks the Run goroutine to reconcile with the broker (D11) as soon
// as possible, interrupting a poll in progress.
func (i *Ingester) wake(reason string) {
	i.wakeMu.Lock()
	if i.wakeReason == "" {
		i.wakeReason = reason
	}
	if i.pollCancel != nil {
		i.pollCancel()
	}
	i.wakeMu.Unlock()
}

func (i *Ingester) takeWake() string {
	i.wakeMu.Lock()
	defer i.wakeMu.Unlock()
	r := i.wakeReason
	i.wakeReason = ""
	return r
}

// armPoll registers cancel as the poll interrupter unless a wake is
// pending.
func (i *Ingester) armPoll(cancel context.CancelFunc) bool {
	i.wakeMu.Lock()
	defer i.wakeMu.Unlock()
	if i.wakeReason != "" {
		return false
	}
	i.pollCancel = cancel
	return true
}

func (i *Ingester) disarmPoll() {
	i.wakeMu.Lock()
	i.pollCancel = nil
	i.wakeMu.Unlock()
}

// loop polls, processes and appends until ctx ends.
func (i *Ingester) loop(ctx context.Context) error {
	lastPausedLog := time.Now()
	for {
		if ctx.Err() != nil {
			return i.drain(ctx)
		}
		if len(i.decodePaused) > 0 && time.Since(lastPausedLog) > pausedLogInterval {
			lastPausedLog = time.Now()
			for p, o := range i.decodePaused {
				i.log.Error("partition paused by KAFKA_ON_DECODE_ERROR=pause; restart to skip the record (it is old data after a restart)",
					"partition", p, "offset", o)
			}
		}
		if reason := i.takeWake(); reason != "" {
			if err := i.handle(ctx, i.reconcile(ctx, reason)); err != nil {
				return err
			}
			continue
		}
		pctx, cancel := context.WithCancel(ctx)
		if !i.armPoll(cancel) {
			cancel()
			continue
		}
		fetches := i.cons.PollRecords(pctx, i.cfg.BatchMaxRecords)
		i.disarmPoll()
		cancel()
		if fetches.IsClientClosed() {
			return errors.New("ingest: consumer closed unexpectedly")
		}
		i.fetchErrors(fetches)
		if err := i.handle(ctx, i.handleRecords(ctx, fetches)); err != nil {
			return err
		}
	}
}

// handle turns a step's error into the loop's reaction: errResync reloads
// offsets from the store and restarts the consumer; a closed store ends
// Run; a cancelled context ends the loop at its next check.
func (i *Ingester) handle(ctx context.Context, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, errResync):
		i.log.Error("store offsets differ from ingest's; reloading them and restarting consumption", "err", err)
		i.next = i.db.IngestOffsets()
		i.publishNext(nil)
		if serr := i.startConsumer(ctx, false); serr != nil && ctx.Err() == nil {
			i.log.Warn("restart of consumption failed; retrying", "err", serr)
			i.wake("restart")
		}
		return nil
	case errors.Is(err, store.ErrClosed):
		return fmt.Errorf("ingest: %w", err)
	case ctx.Err() != nil:
		return nil
	default:
		// A store or broker step that failed (e.g. SetSource on a store
		// backend that is briefly unreachable): try the check again.
		i.log.Error("ingest step failed; retrying", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
		i.wake("retry")
		return nil
	}
}

// drain appends what is already buffered in the consumer at shutdown.
func (i *Ingester) drain(ctx context.Context) error {
	deadline := time.Now().Add(drainBudget)
	for n := 0; n < 16 && time.Now().Before(deadline); n++ {
		fetches := i.cons.PollRecords(nil, i.cfg.BatchMaxRecords) //nolint:staticcheck // nil: return buffered records only
		if fetches.NumRecords() == 0 {
			break
		}
		if err := i.handleRecords(ctx, fetches); err != nil {
			if errors.Is(err, store.ErrClosed) {
				return fmt.Errorf("ingest: %w", err)
			}
			break
		}
	}
	i.log.Info("ingest stopped", "next_offsets", i.next)
	return nil
}

// fetchErrors handles the partition errors of a poll.
func (i *Ingester) fetchErrors(fetches kgo.Fetches) {
	var infra error
	fetches.EachError(func(_ string, p int32, err error) {
		var loss *kgo.ErrDataLoss
		switch {
		case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded), errors.Is(err, kgo.ErrClientClosed):
		case errors.As(err, &loss):
			i.log.Error("Kafka reports data loss; checking the log against the store", "partition", p, "err", err)
			i.noteInfraError(err)
			i.wake("data_loss")
		case errors.Is(err, kerr.OffsetOutOfRange):
			i.noteInfraError(err)
			i.wake("offset_out_of_range")
		case errors.Is(err, kerr.UnknownTopicOrPartition), errors.Is(err, kerr.UnknownTopicID):
			i.noteInfraError(err)
			i.wake("unknown_topic")
			infra = err
		default:
			i.noteInfraError(err)
			infra = err
		}
	})
	if infra != nil && fetches.NumRecords() == 0 {
		time.Sleep(infraErrorSleep)
	}
}

// handleRecords runs the pipeline over a poll's records and appends them
// in batches bounded by count and bytes.
func (i *Ingester) handleRecords(ctx context.Context, fetches kgo.Fetches) error {
	if fetches.NumRecords() == 0 {
		return nil
	}
	bb := newBatchBuilder(i.cfg.BatchMaxRecords, i.cfg.BatchMaxBytes)
	for _, f := range fetches {
		for _, t := range f.Topics {
			if t.Topic != i.cfg.Topic {
				continue
			}
			if t.TopicID != ([16]byte{}) && i.topicID != ([16]byte{}) && t.TopicID != i.topicID {
				// Records of a recreated topic: do not mix them into this
				// source; the reconcile starts a new one and re-reads.
				i.log.Warn("fetched records carry a new topic id; checking the topic", "topic_id", hex.EncodeToString(t.TopicID[:]))
				i.wake("topic_id_changed")
				continue
			}
			for _, fp := range t.Partitions {
				if err := i.handlePartition(ctx, bb, fp); err != nil {
					return err
				}
			}
		}
	}
	return i.flush(ctx, bb)
}

func (i *Ingester) handlePartition(ctx context.Context, bb *batchBuilder, fp kgo.FetchPartition) error {
	p := fp.Partition
	if _, paused := i.decodePaused[p]; paused {
		return nil
	}
	for _, r := range fp.Records {
		exp, has := bb.expected(p, i.next)
		if has && r.Offset < exp {
			continue // already accounted for (a rewind or an evicted range)
		}
		if has && r.Offset > exp {
			i.checkEvicted(ctx, bb, p, exp, r.Offset)
		}
		rec, out := i.process(ctx, r)
		switch out {
		case outOK:
			bb.add(rec)
		case outSkip:
			bb.skip(p, r.Offset)
		case outPause:
			i.pauseDecode(p, r.Offset)
			return nil
		}
		if bb.full() {
			if err := i.flush(ctx, bb); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkEvicted records [exp, start) as evicted when the log start of p
// passed exp (the consumer was reset to the log start: D11). Other holes
// (transaction markers, compaction) are left unrecorded.
func (i *Ingester) checkEvicted(ctx context.Context, bb *batchBuilder, p int32, exp, first int64) {
	lctx, cancel := context.WithTimeout(ctx, boundsTimeout)
	defer cancel()
	l, err := i.adm.ListStartOffsets(lctx, i.cfg.Topic)
	if err != nil {
		i.log.Warn("offset gap: log start unknown, gap left unrecorded", "partition", p, "from", exp, "to", first, "err", err)
		return
	}
	o, ok := l.Lookup(i.cfg.Topic, p)
	if !ok || o.Err != nil || o.Offset <= exp {
		return
	}
	to := min(o.Offset, first)
	i.log.Error("records evicted from Kafka before ingest read them", "partition", p, "from", exp, "to", to, "count", to-exp)
	bb.evict(p, exp, to)
}

// pauseDecode stops partition p at offset off (KAFKA_ON_DECODE_ERROR=pause).
func (i *Ingester) pauseDecode(p int32, off int64) {
	i.decodePaused[p] = off
	i.cons.PauseFetchPartitions(map[string][]int32{i.cfg.Topic: {p}})
	// Rewind, so that a resumed fetch starts at the bad record.
	i.cons.SetOffsets(map[string]map[int32]kgo.EpochOffset{i.cfg.Topic: {p: {Epoch: -1, Offset: off}}})
	i.m.Paused.WithLabelValues(PauseDecode).Set(1)
	i.mu.Lock()
	i.stat.decodePaused[p] = off
	i.stat.decodeOrder = append(i.stat.decodeOrder, p)
	i.mu.Unlock()
	i.log.Error("partition paused at an invalid record (KAFKA_ON_DECODE_ERROR=pause); other partitions continue. "+
		"To skip the record, restart (with either policy): it is then old data, recorded as invalid and not DLQ'd again",
		"partition", p, "offset", off)
}

// flush appends bb (if not empty) and resets it.
func (i *Ingester) flush(ctx context.Context, bb *batchBuilder) error {
	if bb.empty() {
		return nil
	}
	b := bb.batch()
	if err := i.appendWithRetry(ctx, b); err != nil {
		bb.reset()
		return err
	}
	bb.reset()
	i.committed(b)
	return nil
}

// appendWithRetry appends b, retrying with backoff while the store is
// full or failing (fetching paused meanwhile). The append itself is never
// cancelled mid-commit; ctx only ends the retries.
func (i *Ingester) appendWithRetry(ctx context.Context, b store.Batch) error {
	backoff := 50 * time.Millisecond
	for {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), appendTimeout)
		t0 := time.Now()
		err := i.db.Append(actx, b)
		cancel()
		i.m.AppendDuration.Observe(time.Since(t0).Seconds())
		if err == nil {
			if i.storePaused {
				i.resumeStore()
			}
			return nil
		}
		switch {
		case errors.Is(err, store.ErrClosed):
			return err
		case errors.Is(err, store.ErrOffsetOrder):
			return fmt.Errorf("%w: %w", errResync, err)
		}
		i.m.AppendRetries.Inc()
		i.pauseStore(err)
		select {
		case <-ctx.Done():
			i.log.Warn("shutdown while the store refuses appends; the batch stays in Kafka", "records", len(b.Records), "err", err)
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, maxAppendBackoff)
	}
}

// pauseStore pauses fetching on every partition while the store refuses
// appends, and reports it.
func (i *Ingester) pauseStore(err error) {
	full := errors.Is(err, store.ErrFull)
	i.mu.Lock()
	i.stat.storePaused = true
	i.stat.storeFull = full
	i.stat.storeError = err.Error()
	i.mu.Unlock()
	if i.storePaused {
		return
	}
	i.storePaused = true
	i.m.Paused.WithLabelValues(PauseStore).Set(1)
	if i.cons != nil {
		i.cons.PauseFetchTopics(i.cfg.Topic)
	}
	i.log.Error("store refuses appends; ingest paused, retrying the same batch", "store_full", full, "err", err)
}

func (i *Ingester) resumeStore() {
	i.storePaused = false
	i.m.Paused.WithLabelValues(PauseStore).Set(0)
	if i.cons != nil {
		// Resuming the topic keeps partitions paused by the decode policy
		// paused (they are paused individually).
		i.cons.ResumeFetchTopics(i.cfg.Topic)
	}
	i.mu.Lock()
	i.stat.storePaused, i.stat.storeFull, i.stat.storeError = false, false, ""
	i.mu.Unlock()
	i.log.Info("store accepts appends again; ingest resumed")
}

// committed updates ingest's view after a durable append and notifies.
func (i *Ingester) committed(b store.Batch) {
	for p, n := range b.NextOffsets {
		i.next[p] = n
		i.heads.track(p, n)
	}
	i.m.Appends.Inc()
	i.m.AppendedRecords.Add(float64(len(b.Records)))
	i.m.AppendBatch.Observe(float64(len(b.Records)))
	for _, s := range b.Skipped {
		i.m.SkippedOffsets.WithLabelValues(s.Reason).Add(float64(s.To - s.From))
	}
	i.publishNext(b.NextOffsets)
	if i.notify != nil {
		i.notify.Appended(b)
	}
}

// publishNext copies next offsets into the status (all of them when
// changed is nil).
func (i *Ingester) publishNext(changed map[int32]int64) {
	now := time.Now()
	i.mu.Lock()
	defer i.mu.Unlock()
	if changed == nil {
		i.stat.next = maps.Clone(i.next)
		for p := range i.next {
			if _, ok := i.stat.advanced[p]; !ok {
				i.stat.advanced[p] = now
			}
		}
		return
	}
	for p, n := range changed {
		if old, ok := i.stat.next[p]; !ok || old != n {
			i.stat.advanced[p] = now
		}
		i.stat.next[p] = n
	}
}

// randomID returns a random topic id, for a new source when the broker
// exposes no topic ids.
func randomID() [16]byte {
	var id [16]byte
	_, _ = rand.Read(id[:])
	return id
}

// resumeDecode lifts the decode-policy pause of p (its bad record was
// deleted from Kafka).
func (i *Ingester) resumeDecode(p int32) {
	off := i.decodePaused[p]
	delete(i.decodePaused, p)
	if len(i.decodePaused) == 0 {
		i.m.Paused.WithLabelValues(PauseDecode).Set(0)
	}
	i.mu.Lock()
	delete(i.stat.decodePaused, p)
	i.stat.decodeOrder = slices.DeleteFunc(i.stat.decodeOrder, func(q int32) bool { return q == p })
	i.mu.Unlock()
	if i.cons != nil {
		i.cons.ResumeFetchPartitions(map[string][]int32{i.cfg.Topic: {p}})
	}
	i.log.Warn("partition resumed: the record it was paused at was deleted from Kafka", "partition", p, "offset", off)
}
