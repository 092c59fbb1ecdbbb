// Package redis is the optional Redis replay buffer (DASHSTREAM_STORE=redis):
// a store.Store kept in a Redis server under the key layout of the reference
// server (spec/reference-server.md §4.2–§4.4), so a site that migrates from
// the reference finds and serves the buffer it left, and a reference server
// pointed at a buffer written here can read it too. bbolt stays the default
// backend; this one is for sites that already run Redis.
//
// # What it owns
//
// Every key under P = "dashstream-replay:" + namespace, where namespace is
// the reference §4.3 value alone (wire.ResumeNamespace, DECISIONS D2):
//
//	P:partition:{p}:offset:{o}          string  raw Kafka value (SET EX ttl)
//	P:partition:{p}:offsets             zset    member = the key above, score = offset
//	P:thread:{tid'}:seq:{s}             string  4-byte LE int32 partition ‖ 8-byte LE
//	                                            int64 offset ‖ raw Kafka value
//	P:thread:{tid'}:at:{p}.{o}:seq:{s}  string  same value; see "Thread entries"
//	P:thread:{tid'}:sequences           zset    member = a thread key, score = sequence
//	P:partition:{p}:offset:{o}:m        string  record meta (Kafka time, wire.Index)
//	P:bytes                             hash    partition → payload bytes held
//	P:runs, P:runs:updated,             hash,   run summaries (field tid'), ordered by
//	P:runs:touched                      zsets   UpdatedAt and by last write time
//	P:meta                              hash    topic id, reset generation, layout
//	P:meta:next                         hash    partition → next ingest offset
//	P:meta:skipped:{p}                  zset    skipped ranges "from:to:reason", score from
//	P:meta:partitions                   set     partitions with records, offsets or skips
//
// tid' is wire.SanitizeKey of the bounded thread id; thread reads fall back
// to the legacy "h_" form (wire.LegacyKey) when the sanitised key holds
// nothing and the two differ. Record and thread keys, the ":m" meta keys,
// the zsets, P:bytes and the run keys expire ttl after the last write
// touching them (Options.TTL, REDIS_MESSAGE_TTL_SECS, default 3600 s), as in
// the reference. The P:meta keys never expire: they carry the next ingest
// offsets, the epoch (wire.EpochFor of topic id and generation) and the
// skipped ranges, which must outlive an idle hour.
//
// The ":m" meta value is a text header ("1 <payload length> <12-byte prefix
// in hex> <tid'>:<seq> …\n", readable by the Lua scripts) followed by the
// record's Kafka time and its wire.Index. Records the reference wrote have
// no meta: their index is wire.Extract of the payload and their time the
// header timestamp at millisecond precision.
//
// # Thread entries
//
// The reference writes one key per (thread, sequence), only for nonzero
// sequences; DECISIONS D3 orders a thread by (sequence, partition, offset)
// so that several sequence-0 records (ExecutionTrace) do not collide. Here
// the first record of a (thread, nonzero sequence) gets the reference key
// P:thread:{tid'}:seq:{s}; a sequence-0 record, or a second record with a
// sequence already indexed, gets P:thread:{tid'}:at:{p:010d}.{o:019d}:seq:{s}
// under the same zset score. The member still ends in ":{s}", the suffix
// the reference parses the sequence from, and its value has the reference
// format, so a reference server reads these entries correctly too (it never
// asks for sequence 0). ReadThread orders what it reads by (sequence,
// partition, offset) and drops duplicate keys. Redis orders the members of
// one score by name, so a thread page only uses whole score groups; a
// group larger than a page (hundreds of sequence-0 records of one thread)
// is read whole by every page that starts inside it.
//
// # Writes and retention
//
// Append is one Lua script (EVALSHA) per batch: it checks the offset rules
// of DECISIONS D3 against the stored next offsets and latest record
// (a violation writes nothing and returns store.ErrOffsetOrder), checks
// that the epoch is still the one this Store knows, then writes the
// records, thread entries, skipped ranges, next offsets and run summaries,
// and applies count retention (Retention.MaxRecordsPerPartition: the oldest
// records of the partition are deleted with their meta and thread entries,
// at most 5 000 per partition and batch). A batch whose reply was lost
// (Redis died after running it) is recognised by its fingerprint when
// ingest retries it, and accepted without being written twice. Age and
// byte retention are not implemented: keys expire by TTL, as in the
// reference. Redis Cluster is not supported: one namespace's keys span
// hash slots and the scripts compute key names. One writer (one dashstream
// process) per namespace. Run Redis with maxmemory-policy noeviction or a
// volatile-* policy: the P:meta keys have no TTL and must not be evicted
// (at maxmemory under noeviction, Append fails with store.ErrFull and
// writes nothing; ingest pauses). A Redis that lost everything (restart
// without persistence, FLUSHALL) is noticed by the next Append, which
// restores the epoch and next offsets from memory.
//
// Reads follow the reference: a partition page is one ZRANGEBYSCORE (with
// LIMIT) and one MGET (payloads and meta keys together); a thread page one
// ZRANGEBYSCORE, one MGET of the thread values and one MGET of the meta
// of the records it returns (thread entries carry no meta of their own,
// which keeps an append at five Redis calls per record with one thread);
// a Limits.PayloadOnly read (a replay to sockets) reads no meta.
// A page fetches at most twice what Limits.MaxBytes holds at the recent
// mean payload size. Members whose payload expired are skipped and removed
// (ZREM). Reset and a new source delete keys with SCAN + UNLINK in
// batches, never KEYS.
//
// # Precision
//
// Zset scores are IEEE doubles: offsets and sequences above 2^53 lose
// precision as scores, so their order in a zset, and score ranges, may be
// off by a few units there. Members and values keep the exact numbers (the
// offset is parsed from the member, the sequence from the member suffix),
// and Append logs a warning the first time it sees such a number, as the
// reference does (M-689, M-1011). Kafka offsets and DashStream sequences do
// not get there in practice.
package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/dashstream/dashstream/store"
	"github.com/dashstream/dashstream/wire"
)

// Defaults of Options and of read Limits.
const (
	DefaultTTL         = time.Hour // REDIS_MESSAGE_TTL_SECS default (3600)
	DefaultDialTimeout = 5 * time.Second
	DefaultOpTimeout   = 5 * time.Second
	DefaultPageRecords = 1000 // the reference's page size
	DefaultPageBytes   = 4 << 20
	// KeyPrefix starts every key: P = KeyPrefix + namespace.
	KeyPrefix = "dashstream-replay:"
	// layoutVersion is stored in P:meta.
	layoutVersion = "1"
	// maxSkipsPerPartition bounds the recorded skipped ranges of one
	// partition; the oldest go first.
	maxSkipsPerPartition = 100_000
	// scanCount is the COUNT hint of SCAN sweeps.
	scanCount = 1000
)

// Options configure Open.
type Options struct {
	// Namespace is the reference §4.3 resume namespace
	// (wire.ResumeNamespace), without the epoch. Required; only
	// [A-Za-z0-9_-].
	Namespace string
	// TTL of record, thread and index keys (REDIS_MESSAGE_TTL_SECS);
	// default DefaultTTL, rounded up to whole seconds.
	TTL time.Duration
	// Retention in force. Only MaxRecordsPerPartition applies (0: no count
	// limit, the TTL alone bounds the buffer); the other fields are
	// ignored with a log line.
	Retention store.Retention
	// Logger gets store events; nil discards them.
	Logger *slog.Logger
	// DialTimeout bounds connecting (default DefaultDialTimeout).
	DialTimeout time.Duration
	// OpTimeout bounds the calls of the store.Store methods that take no
	// context (Bounds, Skipped, Stats; default DefaultOpTimeout).
	OpTimeout time.Duration
	// Observer gets operation counts for the reference's Redis series;
	// the zero value counts nothing.
	Observer Observer
}

// Observer receives what the reference counts in its replay_buffer_redis_*
// and dashstream_websocket_redis_* series (spec/reference-server.md §7).
// Any field may be nil. The funcs are called synchronously and must not
// block.
type Observer struct {
	// ReadHit: a ReadPartition or ReadThread call returned records
	// (replay_buffer_redis_hits_total).
	ReadHit func()
	// ReadMiss: a ReadPartition or ReadThread call returned none or
	// failed at Redis (replay_buffer_redis_misses_total).
	ReadMiss func()
	// WriteFailure: an Append failed at Redis, out of memory included
	// (replay_buffer_redis_write_failures_total). A batch refused by the
	// offset rules is not a failure.
	WriteFailure func()
	// Error: any Redis call failed, a read, a write or a maintenance call
	// (dashstream_websocket_redis_errors_total). Calls cut by their
	// context's cancellation are not counted.
	Error func()
	// Latency: how long a successful read ("read", a ReadPartition or
	// ReadThread call, hit or miss) or Append ("write") took
	// (dashstream_websocket_redis_latency_ms{operation}).
	Latency func(op string, d time.Duration)
}

func (o *Observer) readDone(start time.Time, n int, err error) {
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, store.ErrClosed):
	case err != nil:
		call(o.ReadMiss)
	default:
		if n > 0 {
			call(o.ReadHit)
		} else {
			call(o.ReadMiss)
		}
		if o.Latency != nil {
			o.Latency("read", time.Since(start))
		}
	}
}

func (o *Observer) writeDone(start time.Time, err error) {
	switch {
	case err == nil:
		if o.Latency != nil {
			o.Latency("write", time.Since(start))
		}
	case errors.Is(err, store.ErrOffsetOrder), errors.Is(err, store.ErrClosed), errors.Is(err, context.Canceled):
	default:
		call(o.WriteFailure)
	}
}

func call(f func()) {
	if f != nil {
		f()
	}
}

// Store is the Redis store.Store. It is safe for concurrent use; Append,
// Reset and SetSource are serialised.
type Store struct {
	rdb       *goredis.Client
	addr      string
	ns        string
	p         string // key prefix: KeyPrefix + namespace
	ttl       time.Duration
	ttlSecs   string
	retention store.Retention
	log       *slog.Logger
	opTimeout time.Duration
	obs       Observer

	closed  atomic.Bool
	healthy atomic.Bool

	warnedOffset atomic.Bool
	warnedSeq    atomic.Bool
	// meanSize is a running mean of payload sizes (bytes), which bounds
	// what a page fetches.
	meanSize atomic.Int64

	// wmu serialises writers (Append, Reset, SetSource).
	wmu sync.Mutex
	// runCache holds recent run summaries by tid' (writer only, under wmu).
	runCache map[string]cachedRun

	// mu guards the cached meta below. This process is the only writer of
	// the namespace, so the cache is the truth; it is loaded at Open.
	mu         sync.RWMutex
	topicID    [16]byte
	generation uint64
	adopt      bool // a reference-written buffer waiting for its topic id
	next       map[int32]int64
	skipParts  map[int32]bool
}

type cachedRun struct {
	sum store.RunSummary
	at  time.Time
}

var _ store.Store = (*Store)(nil)

// Open connects to the Redis server at url (REDIS_URL, e.g.
// "redis://127.0.0.1:6379/0") and opens the namespace's buffer: the stored
// meta if there is one; else, when the namespace holds a buffer the
// reference server wrote, that buffer (adopted: its next offsets are its
// latest offsets + 1, and the first SetSource keeps it); else a new, empty
// buffer with a random topic id. Open fails when Redis cannot be reached,
// naming the address.
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	if err := checkNamespace(opts.Namespace); err != nil {
		return nil, err
	}
	ropts, err := goredis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("redis: REDIS_URL %q: %w", redactURL(url), err)
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = DefaultDialTimeout
	}
	if opts.OpTimeout <= 0 {
		opts.OpTimeout = DefaultOpTimeout
	}
	if opts.TTL <= 0 {
		opts.TTL = DefaultTTL
	}
	opts.TTL = ((opts.TTL + time.Second - 1) / time.Second) * time.Second
	ropts.DialTimeout = opts.DialTimeout
	ropts.DialerRetries = 1
	ropts.ContextTimeoutEnabled = true
	ropts.DisableIdentity = true
	ropts.Protocol = 2
	ropts.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := &Store{
		rdb:       goredis.NewClient(ropts),
		addr:      ropts.Addr,
		ns:        opts.Namespace,
		p:         KeyPrefix + opts.Namespace,
		ttl:       opts.TTL,
		ttlSecs:   strconv.FormatInt(int64(opts.TTL/time.Second), 10),
		retention: store.Retention{MaxRecordsPerPartition: max(opts.Retention.MaxRecordsPerPartition, 0)},
		log:       log.With("store", "redis", "addr", ropts.Addr, "namespace", opts.Namespace),
		opTimeout: opts.OpTimeout,
		obs:       opts.Observer,
		runCache:  map[string]cachedRun{},
		next:      map[int32]int64{},
		skipParts: map[int32]bool{},
	}
	if r := opts.Retention; r.MaxAge > 0 || r.MaxBytes > 0 || r.MaxFileBytes > 0 {
		s.log.Info("age, byte and file-size retention do not apply to the Redis store; keys expire by TTL",
			"ttl", s.ttl, "max_age", r.MaxAge, "max_bytes", r.MaxBytes, "max_file_bytes", r.MaxFileBytes)
	}
	pctx, cancel := context.WithTimeout(ctx, opts.DialTimeout)
	err = s.rdb.Ping(pctx).Err()
	cancel()
	if err != nil {
		_ = s.rdb.Close()
		return nil, fmt.Errorf("redis: cannot reach Redis at %s (REDIS_URL): %w", s.addr, err)
	}
	s.healthy.Store(true)
	s.meanSize.Store(1024)
	if err := s.load(ctx); err != nil {
		_ = s.rdb.Close()
		return nil, fmt.Errorf("redis: open namespace %s at %s: %w", s.ns, s.addr, err)
	}
	s.log.Info("redis store open", "epoch", s.Epoch(), "ttl", s.ttl,
		"max_records_per_partition", s.retention.MaxRecordsPerPartition, "partitions", len(s.next))
	return s, nil
}

// checkNamespace accepts what wire.ResumeNamespace produces: non-empty,
// only [A-Za-z0-9_-], so it is safe in key segments and SCAN patterns.
func checkNamespace(ns string) error {
	if ns == "" {
		return errors.New("redis: empty namespace (use wire.ResumeNamespace)")
	}
	for i := 0; i < len(ns); i++ {
		c := ns[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return fmt.Errorf("redis: namespace %q: only [A-Za-z0-9_-] allowed", ns)
		}
	}
	return nil
}

// redactURL drops the password of a Redis URL for messages.
func redactURL(u string) string {
	at := strings.LastIndex(u, "@")
	scheme := strings.Index(u, "://")
	if at < 0 || scheme < 0 || at < scheme {
		return u
	}
	return u[:scheme+3] + "…@" + u[at+1:]
}

// Key names.
func (s *Store) metaKey() string         { return s.p + ":meta" }
func (s *Store) nextKey() string         { return s.p + ":meta:next" }
func (s *Store) partsKey() string        { return s.p + ":meta:partitions" }
func (s *Store) skipKey(p int32) string  { return s.p + ":meta:skipped:" + itoa32(p) }
func (s *Store) bytesKey() string        { return s.p + ":bytes" }
func (s *Store) runsKey() string         { return s.p + ":runs" }
func (s *Store) runsUpdatedKey() string  { return s.p + ":runs:updated" }
func (s *Store) partZKey(p int32) string { return s.p + ":partition:" + itoa32(p) + ":offsets" }
func (s *Store) threadZKey(tid string) string {
	return s.p + ":thread:" + tid + ":sequences"
}

func (s *Store) payloadKey(p int32, o int64) string {
	return s.p + ":partition:" + itoa32(p) + ":offset:" + strconv.FormatInt(o, 10)
}

func itoa32(p int32) string { return strconv.FormatInt(int64(p), 10) }

// metaOf is the meta key of a record key.
func metaOf(key string) string { return key + ":m" }

// load reads P:meta into the cache, finishing an interrupted sweep, and
// creates or adopts the buffer when there is no meta.
func (s *Store) load(ctx context.Context) error {
	m, err := s.rdb.HGetAll(ctx, s.metaKey()).Result()
	if err != nil {
		return fmt.Errorf("read meta: %w", err)
	}
	if len(m) == 0 {
		if err := s.create(ctx); err != nil {
			return err
		}
		if m, err = s.rdb.HGetAll(ctx, s.metaKey()).Result(); err != nil {
			return fmt.Errorf("read meta: %w", err)
		}
	}
	if v := m["layout"]; v != layoutVersion {
		return fmt.Errorf("meta layout %q, this version reads %q", v, layoutVersion)
	}
	if err := s.setMetaCache(m); err != nil {
		return err
	}
	if pending := m["pending"]; pending != "" {
		s.log.Warn("finishing an interrupted clear", "kind", pending)
		if err := s.finishSweep(ctx, pending); err != nil {
			return err
		}
	}
	return s.loadOffsets(ctx)
}

// setMetaCache parses P:meta fields into the cache.
func (s *Store) setMetaCache(m map[string]string) error {
	id, err := hex.DecodeString(m["topic"])
	if err != nil || len(id) != 16 {
		return fmt.Errorf("meta topic id %q is not 16 bytes of hex", m["topic"])
	}
	gen, err := strconv.ParseUint(m["generation"], 10, 64)
	if err != nil {
		return fmt.Errorf("meta generation %q: %w", m["generation"], err)
	}
	s.mu.Lock()
	copy(s.topicID[:], id)
	s.generation = gen
	s.adopt = m["adopt"] == "1"
	s.mu.Unlock()
	return nil
}

// loadOffsets reads the next offsets and the partitions with skipped
// ranges into the cache.
func (s *Store) loadOffsets(ctx context.Context) error {
	pipe := s.rdb.Pipeline()
	nextCmd := pipe.HGetAll(ctx, s.nextKey())
	partsCmd := pipe.SMembers(ctx, s.partsKey())
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("read offsets: %w", err)
	}
	next := map[int32]int64{}
	for k, v := range nextCmd.Val() {
		p, err1 := strconv.ParseInt(k, 10, 32)
		n, err2 := strconv.ParseInt(v, 10, 64)
		if err1 != nil || err2 != nil {
			return fmt.Errorf("next offset %q=%q is not a number", k, v)
		}
		next[int32(p)] = n
	}
	var cand []int32
	for _, v := range partsCmd.Val() {
		p, err := strconv.ParseInt(v, 10, 32)
		if err != nil {
			return fmt.Errorf("partition %q is not a number", v)
		}
		if _, ok := next[int32(p)]; !ok {
			cand = append(cand, int32(p))
		}
	}
	skips := map[int32]bool{}
	if len(cand) > 0 {
		pipe := s.rdb.Pipeline()
		cmds := make([]*goredis.IntCmd, len(cand))
		for i, p := range cand {
			cmds[i] = pipe.Exists(ctx, s.skipKey(p))
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return fmt.Errorf("read skipped partitions: %w", err)
		}
		for i, p := range cand {
			if cmds[i].Val() > 0 {
				skips[p] = true
			}
		}
	}
	s.mu.Lock()
	s.next, s.skipParts = next, skips
	s.mu.Unlock()
	return nil
}

// create writes the meta of a namespace without one: a new empty buffer,
// or the adoption of a buffer the reference server wrote.
func (s *Store) create(ctx context.Context) error {
	parts, err := s.scanReferencePartitions(ctx)
	if err != nil {
		return err
	}
	var id [16]byte
	_, _ = rand.Read(id[:]) // never fails (crypto/rand)
	fields := map[string]string{"topic": hex.EncodeToString(id[:]), "generation": "0", "layout": layoutVersion}
	next := map[string]string{}
	if len(parts) > 0 {
		fields["adopt"] = "1"
		pipe := s.rdb.Pipeline()
		cmds := make([]*goredis.StringSliceCmd, len(parts))
		for i, p := range parts {
			cmds[i] = pipe.ZRevRange(ctx, s.partZKey(p), 0, 0)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return fmt.Errorf("read reference partitions: %w", err)
		}
		for i, p := range parts {
			if ms := cmds[i].Val(); len(ms) > 0 {
				if o, ok := offsetOfMember(ms[0]); ok {
					next[itoa32(p)] = strconv.FormatInt(o+1, 10)
				}
			}
		}
		s.log.Info("adopting a replay buffer written by the reference server", "partitions", len(parts))
	}
	// One script, so concurrent creators (or a crash) never leave half a
	// meta behind.
	args := []any{len(fields)}
	for k, v := range fields {
		args = append(args, k, v)
	}
	for k, v := range next {
		args = append(args, k, v)
	}
	err = createScript.Run(ctx, s.rdb, []string{s.metaKey(), s.nextKey(), s.partsKey()}, args...).Err()
	if err != nil {
		return fmt.Errorf("create meta: %w", err)
	}
	return nil
}

// scanReferencePartitions finds P:partition:{p}:offsets zsets with SCAN,
// as the reference's partition discovery does (M-676, M-677).
func (s *Store) scanReferencePartitions(ctx context.Context) ([]int32, error) {
	var parts []int32
	pattern := s.p + ":partition:*:offsets"
	iter := s.rdb.Scan(ctx, 0, pattern, scanCount).Iterator()
	for iter.Next(ctx) {
		k := strings.TrimSuffix(strings.TrimPrefix(iter.Val(), s.p+":partition:"), ":offsets")
		if p, err := strconv.ParseInt(k, 10, 32); err == nil {
			parts = append(parts, int32(p))
		}
	}
	if err := iter.Err(); err != nil {
		return nil, fmt.Errorf("scan partitions: %w", err)
	}
	slices.Sort(parts)
	return slices.Compact(parts), nil
}

// offsetOfMember parses the offset of a partition zset member
// ("…:offset:{o}").
func offsetOfMember(m string) (int64, bool) {
	i := strings.LastIndex(m, ":offset:")
	if i < 0 {
		return 0, false
	}
	o, err := strconv.ParseInt(m[i+len(":offset:"):], 10, 64)
	return o, err == nil && o >= 0
}

// seqOfMember parses the sequence of a thread zset member (the suffix
// after the last ':').
func seqOfMember(m string) (uint64, bool) {
	i := strings.LastIndexByte(m, ':')
	if i < 0 {
		return 0, false
	}
	s, err := strconv.ParseUint(m[i+1:], 10, 64)
	return s, err == nil
}

// check fails with store.ErrClosed or the context's error.
func (s *Store) check(ctx context.Context, op string) error {
	if s.closed.Load() {
		return fmt.Errorf("redis: %s: %w", op, store.ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("redis: %s: %w", op, err)
	}
	return nil
}

// opCtx bounds a call of a method without a context.
func (s *Store) opCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), s.opTimeout)
}

// wrap adds context to a Redis error, notes the connection state and maps
// a closed client to store.ErrClosed and Redis OOM to store.ErrFull.
func (s *Store) wrap(op string, err error) error {
	if err == nil {
		s.healthy.Store(true)
		return nil
	}
	switch {
	case s.closed.Load() || errors.Is(err, goredis.ErrClosed):
		return fmt.Errorf("redis: %s: %w", op, store.ErrClosed)
	case !errors.Is(err, context.Canceled):
		call(s.obs.Error)
	}
	switch {
	case goredis.HasErrorPrefix(err, "OOM"):
		s.healthy.Store(true)
		return fmt.Errorf("redis: %s: Redis is out of memory (maxmemory): %w: %v", op, store.ErrFull, err)
	}
	var rerr goredis.Error
	if !errors.As(err, &rerr) || isNetError(err) {
		s.healthy.Store(false)
		return fmt.Errorf("redis: %s: Redis at %s unreachable: %w", op, s.addr, err)
	}
	return fmt.Errorf("redis: %s: %w", op, err)
}

func isNetError(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, context.DeadlineExceeded)
}

// Ping checks that Redis answers; /health can report "backend unreachable"
// with it.
func (s *Store) Ping(ctx context.Context) error {
	if s.closed.Load() {
		return fmt.Errorf("redis: ping: %w", store.ErrClosed)
	}
	return s.wrap("ping", s.rdb.Ping(ctx).Err())
}

// Healthy reports whether the last call that reached for Redis got an
// answer. It does not block.
func (s *Store) Healthy() bool { return !s.closed.Load() && s.healthy.Load() }

// Addr is the Redis address in use (host:port).
func (s *Store) Addr() string { return s.addr }

// Namespace is the key namespace in use.
func (s *Store) Namespace() string { return s.ns }

// Epoch implements store.Store.
func (s *Store) Epoch() string {
	if s.closed.Load() {
		return ""
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return wire.EpochFor(s.topicID, s.generation)
}

// IngestOffsets implements store.Store. This process is the namespace's
// only writer, so the offsets it loaded at Open and committed since are
// the stored ones; no Redis call is made.
func (s *Store) IngestOffsets() map[int32]int64 {
	if s.closed.Load() {
		return map[int32]int64{}
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return maps.Clone(s.next)
}

// Partitions implements store.Store (from the same cache as
// IngestOffsets: every partition with records has a next offset).
func (s *Store) Partitions() []int32 {
	if s.closed.Load() {
		return nil
	}
	s.mu.RLock()
	ids := make([]int32, 0, len(s.next)+len(s.skipParts))
	for p := range s.next {
		ids = append(ids, p)
	}
	for p := range s.skipParts {
		if _, ok := s.next[p]; !ok {
			ids = append(ids, p)
		}
	}
	s.mu.RUnlock()
	slices.Sort(ids)
	return ids
}

// Capabilities implements store.Store.
func (s *Store) Capabilities() store.Capabilities {
	return store.Capabilities{RetainByCount: true, Durable: true}
}

// Close closes the connection pool; every later call fails with
// store.ErrClosed. Nothing is lost: appends are written when they return.
func (s *Store) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return fmt.Errorf("redis: close: %w", store.ErrClosed)
	}
	// Wait for a running writer so its script is not cut off.
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := s.rdb.Close(); err != nil {
		return fmt.Errorf("redis: close: %w", err)
	}
	return nil
}

// SetClientLogger routes the go-redis client library's own log lines
// (connection pool dial failures and the like, which it prints to stderr
// by default) to l at debug level. The library keeps one logger per
// process, so this is process-wide: call it once from main, before Open.
func SetClientLogger(l *slog.Logger) {
	goredis.SetLogger(clientLogger{l: l})
}

type clientLogger struct{ l *slog.Logger }

func (c clientLogger) Printf(ctx context.Context, format string, v ...any) {
	c.l.DebugContext(ctx, strings.TrimSpace(fmt.Sprintf(format, v...)), "component", "go-redis")
}
