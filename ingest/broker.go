package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Embedded broker defaults (DECISIONS D1, D11).
const (
	DefaultBrokerAddr              = "127.0.0.1:9092"
	DefaultBrokerTopic             = "dashstream-quality"
	DefaultBrokerPartitions        = 3
	DefaultBrokerRetentionBytes    = 64 << 20 // per partition
	DefaultBrokerSegmentBytes      = 8 << 20
	DefaultBrokerRetentionInterval = 30 * time.Second
)

// ErrBrokerAddrInUse is wrapped by StartBroker's error when the requested
// listen address is already taken by another process.
var ErrBrokerAddrInUse = errors.New("address already in use")

// BrokerConfig configures the embedded Kafka-protocol broker that
// `dashstream demo` runs (a single-node github.com/twmb/franz-go/pkg/kfake
// cluster). The zero value of every field selects its default.
type BrokerConfig struct {
	// Addr is the loopback host:port to listen on; port 0 picks a free
	// port. Default DefaultBrokerAddr. Non-loopback hosts are refused.
	Addr string
	// DataDir is where the broker keeps its log, topic ids and group
	// offsets across restarts; "" keeps everything in memory.
	DataDir string
	// SyncWrites fsyncs every produced batch (kfake SyncWrites). Without
	// it, segments are synced on roll and on Close only.
	SyncWrites bool
	// Topic is the DashStream topic. Default DefaultBrokerTopic.
	Topic string
	// Partitions is the partition count of Topic and DLQTopic when they
	// are created, and the minimum they are grown to when they exist.
	// Default DefaultBrokerPartitions.
	Partitions int
	// DLQTopic is the dead-letter topic. Default Topic + "-dlq".
	DLQTopic string
	// RetentionBytes is the topic config retention.bytes: the most bytes
	// kept per partition. Default DefaultBrokerRetentionBytes.
	RetentionBytes int64
	// SegmentBytes is the topic config segment.bytes. Retention removes
	// whole segments from disk, so a partition's files hold at most
	// about RetentionBytes + SegmentBytes. Default
	// DefaultBrokerSegmentBytes.
	SegmentBytes int64
	// RetentionInterval is how often retention is applied. Default
	// DefaultBrokerRetentionInterval.
	RetentionInterval time.Duration
	// MaxMessageBytes is the broker config message.max.bytes (largest
	// record batch accepted); 0 keeps kfake's default of 1048588.
	MaxMessageBytes int
	// Logger receives broker lifecycle logs and kfake's own warnings and
	// errors. Default slog.Default().
	Logger *slog.Logger
}

// withDefaults returns c with every zero field replaced by its default.
func (c BrokerConfig) withDefaults() BrokerConfig {
	if c.Addr == "" {
		c.Addr = DefaultBrokerAddr
	}
	if c.Topic == "" {
		c.Topic = DefaultBrokerTopic
	}
	if c.Partitions <= 0 {
		c.Partitions = DefaultBrokerPartitions
	}
	if c.DLQTopic == "" {
		c.DLQTopic = c.Topic + "-dlq"
	}
	if c.RetentionBytes <= 0 {
		c.RetentionBytes = DefaultBrokerRetentionBytes
	}
	if c.SegmentBytes <= 0 {
		c.SegmentBytes = DefaultBrokerSegmentBytes
	}
	if c.RetentionInterval <= 0 {
		c.RetentionInterval = DefaultBrokerRetentionInterval
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Broker is a running embedded single-node Kafka-protocol broker. Its
// methods are safe for concurrent use.
type Broker struct {
	cfg     BrokerConfig
	cluster *kfake.Cluster
	addr    string
	log     *slog.Logger

	stop chan struct{}
	wg   sync.WaitGroup

	// mu guards closed. Every call into the cluster holds the read lock:
	// kfake's admin calls block forever once the cluster is closed.
	mu     sync.RWMutex
	closed bool
}

// StartBroker starts the embedded broker described by cfg and creates
// cfg.Topic and cfg.DLQTopic if they do not exist yet (with DataDir set, a
// restarted broker reloads them with their log, offsets and topic ids).
// Topics get retention.bytes and segment.bytes only; time-based retention
// is disabled (DECISIONS D11). Retention is applied every
// cfg.RetentionInterval until Close.
//
// If the address is taken, the error wraps ErrBrokerAddrInUse; see
// StartBrokerFallback. ctx bounds startup only; the broker runs until
// Close.
func StartBroker(ctx context.Context, cfg BrokerConfig) (*Broker, error) {
	cfg = cfg.withDefaults()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("embedded broker: %w", err)
	}
	listenAddr, err := loopbackAddr(cfg.Addr)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", listenAddr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("embedded broker: listen on %s: %w (another process holds the port; use port 0 for a free one): %w",
				listenAddr, ErrBrokerAddrInUse, err)
		}
		return nil, fmt.Errorf("embedded broker: listen on %s: %w", listenAddr, err)
	}

	// Hand our listener to kfake so we control the address and see a
	// clear error above; kfake itself always binds 127.0.0.1.
	var handed bool
	listenFn := func(string, string) (net.Listener, error) {
		if handed {
			return nil, errors.New("embedded broker: only one listener is available")
		}
		handed = true
		return ln, nil
	}
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.ListenFn(listenFn),
		kfake.ClusterID("dashstream-embedded"),
		kfake.DefaultNumPartitions(cfg.Partitions),
		kfake.WithLogger(slogKfake{cfg.Logger}),
		kfake.BrokerConfigs(brokerConfigs(cfg)),
	}
	if cfg.DataDir != "" {
		opts = append(opts, kfake.DataDir(cfg.DataDir))
		if cfg.SyncWrites {
			opts = append(opts, kfake.SyncWrites())
		}
	}
	cluster, err := kfake.NewCluster(opts...)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("embedded broker: start (data dir %q): %w", cfg.DataDir, err)
	}
	b := &Broker{
		cfg:     cfg,
		cluster: cluster,
		addr:    ln.Addr().String(),
		log:     cfg.Logger.With("component", "embedded-broker"),
		stop:    make(chan struct{}),
	}
	if err := b.ensureTopics(ctx); err != nil {
		cluster.Close()
		return nil, err
	}
	b.wg.Add(1)
	go b.retentionLoop()
	b.log.Info("embedded broker started",
		"addr", b.addr, "data_dir", cfg.DataDir, "topic", cfg.Topic, "dlq_topic", cfg.DLQTopic,
		"partitions", cfg.Partitions, "retention_bytes", cfg.RetentionBytes,
		"segment_bytes", cfg.SegmentBytes, "retention_interval", cfg.RetentionInterval)
	return b, nil
}

// StartBrokerFallback starts the broker on cfg.Addr and, if that address
// is taken, on a free port of the same host. Any other error is returned
// as is. The chosen address is Broker.Addr.
func StartBrokerFallback(ctx context.Context, cfg BrokerConfig) (*Broker, error) {
	b, err := StartBroker(ctx, cfg)
	if err == nil || !errors.Is(err, ErrBrokerAddrInUse) {
		return b, err
	}
	cfg = cfg.withDefaults()
	host, _, splitErr := net.SplitHostPort(cfg.Addr)
	if splitErr != nil {
		return nil, err
	}
	wanted := cfg.Addr
	cfg.Addr = net.JoinHostPort(host, "0")
	b, err2 := StartBroker(ctx, cfg)
	if err2 != nil {
		return nil, fmt.Errorf("embedded broker: %s taken and free-port fallback failed: %w", wanted, err2)
	}
	b.log.Warn("embedded broker address taken; listening on a free port instead",
		"wanted", wanted, "addr", b.addr)
	return b, nil
}

// loopbackAddr validates addr as a loopback host:port and returns the
// address to listen on ("localhost" becomes 127.0.0.1).
func loopbackAddr(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("embedded broker: address %q: %w", addr, err)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return "", fmt.Errorf("embedded broker: address %q: invalid port %q", addr, port)
	}
	if host == "localhost" {
		host = "127.0.0.1"
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return "", fmt.Errorf("embedded broker: address %q: host must be a loopback address (127.0.0.1, ::1 or localhost)", addr)
	}
	return net.JoinHostPort(host, port), nil
}

// brokerConfigs returns the kfake broker-level configs for cfg.
func brokerConfigs(cfg BrokerConfig) map[string]string {
	m := map[string]string{
		// Makes kfake's own retention timer (started when a topic
		// with retention configs is created or altered) fire at our
		// interval instead of hourly. It is not restarted after a
		// data-dir reload, hence our own ticker too (D11).
		"log.cleaner.backoff.ms": strconv.FormatInt(cfg.RetentionInterval.Milliseconds(), 10),
		// kfake defaults retention.ms to 7 days even when a topic sets
		// only retention.bytes. Time-based retention can empty a
		// partition, which then comes back at offset 0 after a reload
		// (D11), so disable it broker-wide; topics never set it.
		"log.retention.ms": "-1",
	}
	if cfg.MaxMessageBytes > 0 {
		m["message.max.bytes"] = strconv.Itoa(cfg.MaxMessageBytes)
	}
	return m
}

// topicConfigs returns the configs the embedded topics are created with.
func (b *Broker) topicConfigs() map[string]string {
	return map[string]string{
		"retention.bytes": strconv.FormatInt(b.cfg.RetentionBytes, 10),
		"segment.bytes":   strconv.FormatInt(b.cfg.SegmentBytes, 10),
	}
}

// ensureTopics creates the topic and DLQ topic if missing. Existing topics
// (reloaded from DataDir) keep their id and log; they are grown to
// cfg.Partitions and their retention configs updated if they differ.
func (b *Broker) ensureTopics(ctx context.Context) error {
	want := b.topicConfigs()
	var adm *kadm.Client
	defer func() {
		if adm != nil {
			adm.Close()
		}
	}()
	admin := func() (*kadm.Client, error) {
		if adm != nil {
			return adm, nil
		}
		cl, err := kgo.NewClient(kgo.SeedBrokers(b.addr))
		if err != nil {
			return nil, fmt.Errorf("embedded broker: admin client: %w", err)
		}
		adm = kadm.NewClient(cl)
		return adm, nil
	}
	for _, topic := range []string{b.cfg.Topic, b.cfg.DLQTopic} {
		info := b.cluster.TopicInfo(topic)
		if info == nil {
			if err := b.cluster.CreateTopic(topic, int32(b.cfg.Partitions), want); err != nil {
				return fmt.Errorf("embedded broker: create topic %q: %w", topic, err)
			}
			b.log.Info("embedded broker created topic", "topic", topic, "partitions", b.cfg.Partitions)
			continue
		}
		var alter []kadm.AlterConfig
		for k, v := range want {
			if cur := info.Configs[k]; cur == nil || *cur != v {
				alter = append(alter, kadm.AlterConfig{Op: kadm.SetConfig, Name: k, Value: &v})
			}
		}
		if len(alter) > 0 {
			a, err := admin()
			if err != nil {
				return err
			}
			rs, err := a.AlterTopicConfigs(ctx, alter, topic)
			if err == nil {
				_, err = rs.On(topic, func(r *kadm.AlterConfigsResponse) error { return r.Err })
			}
			if err != nil {
				return fmt.Errorf("embedded broker: update configs of topic %q: %w", topic, err)
			}
			b.log.Info("embedded broker updated topic configs", "topic", topic, "configs", want)
		}
		have := len(b.cluster.PartitionInfos(topic))
		switch {
		case have < b.cfg.Partitions:
			a, err := admin()
			if err != nil {
				return err
			}
			rs, err := a.UpdatePartitions(ctx, b.cfg.Partitions, topic)
			if err == nil {
				_, err = rs.On(topic, func(r *kadm.CreatePartitionsResponse) error { return r.Err })
			}
			if err != nil {
				return fmt.Errorf("embedded broker: grow topic %q from %d to %d partitions: %w", topic, have, b.cfg.Partitions, err)
			}
			b.log.Info("embedded broker grew topic", "topic", topic, "from", have, "to", b.cfg.Partitions)
		case have > b.cfg.Partitions:
			b.log.Warn("embedded broker topic has more partitions than configured; partitions cannot shrink",
				"topic", topic, "partitions", have, "configured", b.cfg.Partitions)
		}
	}
	return nil
}

// retentionLoop applies retention every RetentionInterval until Close.
func (b *Broker) retentionLoop() {
	defer b.wg.Done()
	t := time.NewTicker(b.cfg.RetentionInterval)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
			b.ApplyRetention()
		}
	}
}

// Addr returns the host:port the broker listens on, for KAFKA_BROKERS.
func (b *Broker) Addr() string { return b.addr }

// Config returns the broker's configuration with defaults filled in.
func (b *Broker) Config() BrokerConfig { return b.cfg }

// ApplyRetention applies the topics' retention.bytes now, removing the
// oldest record batches (and whole segment files) beyond the limit. It is
// a no-op after Close.
func (b *Broker) ApplyRetention() {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return
	}
	b.cluster.ApplyRetention()
}

// TopicID returns the Kafka topic id (KIP-516) of topic, which a DataDir
// reload preserves and a recreated topic changes. ok is false if the topic
// does not exist or the broker is closed.
func (b *Broker) TopicID(topic string) (id [16]byte, ok bool) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return id, false
	}
	info := b.cluster.TopicInfo(topic)
	if info == nil {
		return id, false
	}
	return info.TopicID, true
}

// Cluster returns the underlying kfake cluster for tests that need its
// hooks (DeleteTopic, Control, PartitionInfo, …). Do not use it after
// Close: kfake's admin calls block forever on a closed cluster.
func (b *Broker) Cluster() *kfake.Cluster { return b.cluster }

// Close stops retention and shuts the broker down, writing its state to
// DataDir. It is idempotent and always returns nil (kfake reports
// persistence failures through the logger only).
func (b *Broker) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.mu.Unlock()
	close(b.stop)
	b.wg.Wait()
	b.cluster.Close()
	b.log.Info("embedded broker stopped", "addr", b.addr)
	return nil
}

// slogKfake adapts slog to kfake's Logger. kfake logs every request at
// info level, so its info becomes slog debug and its debug is dropped.
type slogKfake struct{ l *slog.Logger }

// Logf implements kfake.Logger.
func (s slogKfake) Logf(level kfake.LogLevel, format string, args ...any) {
	var lvl slog.Level
	switch level {
	case kfake.LogLevelError:
		lvl = slog.LevelError
	case kfake.LogLevelWarn:
		lvl = slog.LevelWarn
	case kfake.LogLevelInfo:
		lvl = slog.LevelDebug
	default:
		return
	}
	ctx := context.Background()
	if !s.l.Enabled(ctx, lvl) {
		return
	}
	s.l.Log(ctx, lvl, fmt.Sprintf(format, args...), "component", "kfake")
}
