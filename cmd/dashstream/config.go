package main

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dashstream/dashstream/hub"
	"github.com/dashstream/dashstream/ingest"
	"github.com/dashstream/dashstream/store"
	"github.com/dashstream/dashstream/store/bolt"
	"github.com/dashstream/dashstream/wire/synth"
)

// Modes loadConfig accepts.
const (
	modeServe = "serve"
	modeDemo  = "demo"
)

// Defaults and limits shared by both modes (DECISIONS D1, reference §9).
const (
	defaultHTTPHost        = "127.0.0.1"
	defaultKafkaAddr       = "127.0.0.1:9092"
	defaultRunsPerSecond   = 2.0
	defaultRedisURL        = "redis://127.0.0.1:6379"
	defaultRedisTTL        = time.Hour // REDIS_MESSAGE_TTL_SECS (reference §4.2: 0 ⇒ 3600)
	defaultRedisMaxSeqs    = 10000     // REDIS_MAX_SEQUENCES (reference §4.6)
	defaultBuildInfo       = "unknown"
	expectedSchemasFile    = "expected_schemas.json"
	minMaxDBBytes          = 256 << 10 // the smallest file cap bolt accepts
	maxSecondsSetting      = math.MaxInt64 / int64(time.Second)
	levelTrace             = slog.LevelDebug - 4
	otelIgnoredExplanation = "accepted and ignored: DashStream exports no OpenTelemetry traces (use /metrics)"
)

// defaultHTTPPorts are the ports tried in order when WEBSOCKET_PORT is unset
// (reference §2.1).
func defaultHTTPPorts() []int { return []int{3002, 3003, 3004, 3005} }

// config is everything `serve` and `demo` need, read once at startup by
// loadConfig from flags and the environment.
type config struct {
	// Mode is "serve" or "demo".
	Mode string
	// Ingest comes from ingest.ConfigFromEnv (KAFKA_*, DLQ_*,
	// WEBSOCKET_MAX_PAYLOAD_BYTES, DASHSTREAM_INGEST_*), with defaults
	// applied. In demo mode KAFKA_BROKERS is ignored and Brokers holds
	// KafkaAddr until the embedded broker reports its real address.
	Ingest ingest.Config
	// KafkaClusterID is KAFKA_CLUSTER_ID, part of the reference §4.3
	// resume namespace.
	KafkaClusterID string
	// Hub holds the WebSocket settings (reference §6, DECISIONS D4, D5).
	Hub hub.Config
	// Store selects and sizes the replay store.
	Store storeConfig
	// HTTPHost is WEBSOCKET_HOST (default 127.0.0.1); "" listens on every
	// interface (demo --addr :PORT).
	HTTPHost string
	// HTTPPorts are tried in order: exactly [WEBSOCKET_PORT] when it is
	// set, else 3002..3005. Port 0 asks the kernel for a free port.
	HTTPPorts []int
	// ExpectedSchemasPath is EXPECTED_SCHEMAS_PATH, else
	// <data dir>/expected_schemas.json.
	ExpectedSchemasPath string
	// LogLevel is RUST_LOG mapped to slog (see parseRustLog).
	LogLevel slog.Level
	// LogFormat is DASHSTREAM_LOG_FORMAT: "text" or "json".
	LogFormat string
	// GitSHA and BuildDate are GIT_COMMIT_SHA and BUILD_DATE for /version
	// ("unknown" when unset).
	GitSHA, BuildDate string
	// Ignored are messages to log once at startup: settings that were
	// accepted but have no effect here.
	Ignored []string

	// KafkaAddr (demo, --kafka-addr) is where the embedded broker listens.
	KafkaAddr string
	// RunsPerSecond (demo, --runs-per-second) paces the built-in producer;
	// 0 runs no producer.
	RunsPerSecond float64
	// Shape and MinMessages (demo, --shape, --min-messages) are passed to
	// the synthetic producer (DECISIONS D9).
	Shape       string
	MinMessages int
}

// storeConfig selects and sizes the store.
type storeConfig struct {
	// Kind is DASHSTREAM_STORE: "bolt", "memory" or "redis".
	Kind string
	// DataDir is DASHSTREAM_DATA_DIR: the bolt file, the expected schemas
	// and the demo broker's log live here.
	DataDir string
	// Retention is the retention in force (DASHSTREAM_RETENTION_*,
	// DASHSTREAM_MAX_DB_BYTES). With Redis only MaxRecordsPerPartition
	// applies (DASHSTREAM_RETENTION_RECORDS if set, else
	// REDIS_MAX_SEQUENCES); the other fields are 0.
	Retention store.Retention
	// Fsync is DASHSTREAM_FSYNC.
	Fsync bool
	// RedisURL is REDIS_URL when Kind is "redis", else empty.
	RedisURL string
	// RedisTTL is REDIS_MESSAGE_TTL_SECS when Kind is "redis" (default
	// and 0: 3600 s), else 0.
	RedisTTL time.Duration
}

// modeDefaults are the DECISIONS D1 defaults that differ between serve and
// demo.
type modeDefaults struct {
	retentionAge   time.Duration
	retentionBytes int64
	maxDBBytes     int64
	// tailRecords: the demo's producer makes bursts of thousands of
	// records a second, and a browser tab that pauses half a second must
	// not fall out of a 1000-record tail and be disconnected as slow.
	tailRecords int
}

func defaultsFor(mode string) modeDefaults {
	if mode == modeDemo {
		return modeDefaults{retentionAge: 24 * time.Hour, retentionBytes: 256 << 20, maxDBBytes: 512 << 20, tailRecords: 20000}
	}
	return modeDefaults{retentionAge: 168 * time.Hour, retentionBytes: 1 << 30, maxDBBytes: 2 << 30, tailRecords: 1000}
}

// cfgFlag describes one command-line flag: its environment variable (empty
// for the demo-only flags), usage placeholder, defaults and help.
type cfgFlag struct {
	name     string
	env      string
	arg      string
	serveDef string // default shown in the usage; "" shows none
	demoDef  string
	help     string
	isBool   bool
	demoOnly bool
}

// cfgFlags lists every flag of serve and demo. Every DASHSTREAM_* setting
// has one (DECISIONS D1); flags override the environment.
func cfgFlags() []cfgFlag {
	serve, demo := defaultsFor(modeServe), defaultsFor(modeDemo)
	return []cfgFlag{
		{name: "data-dir", env: "DASHSTREAM_DATA_DIR", arg: "DIR",
			serveDef: "$XDG_CACHE_HOME/dashstream or ~/.cache/dashstream", demoDef: "$XDG_CACHE_HOME/dashstream or ~/.cache/dashstream",
			help: "store file, expected schemas and the demo broker's log"},
		{name: "store", env: "DASHSTREAM_STORE", arg: "KIND", serveDef: "bolt", demoDef: "bolt",
			help: "bolt (file in the data dir), memory or redis (uses REDIS_URL)"},
		{name: "retention-records", env: "DASHSTREAM_RETENTION_RECORDS", arg: "N", serveDef: "0", demoDef: "0",
			help: "max records kept per partition; 0 = no count limit (redis: unset = REDIS_MAX_SEQUENCES)"},
		{name: "retention-age", env: "DASHSTREAM_RETENTION_AGE", arg: "DURATION",
			serveDef: formatDuration(serve.retentionAge), demoDef: formatDuration(demo.retentionAge),
			help: "max record age, a Go duration (72h, 90m); 0 = no age limit"},
		{name: "retention-bytes", env: "DASHSTREAM_RETENTION_BYTES", arg: "SIZE",
			serveDef: formatBytes(serve.retentionBytes), demoDef: formatBytes(demo.retentionBytes),
			help: "total stored bytes kept; at most 0.8 x max-db-bytes; 0 = no byte limit"},
		{name: "max-db-bytes", env: "DASHSTREAM_MAX_DB_BYTES", arg: "SIZE",
			serveDef: formatBytes(serve.maxDBBytes), demoDef: formatBytes(demo.maxDBBytes),
			help: "hard cap on the bolt file (min 256KiB); 0 = no cap"},
		{name: "fsync", env: "DASHSTREAM_FSYNC", arg: "BOOL", serveDef: "true", demoDef: "true", isBool: true,
			help: "fsync every commit; false risks losing the last batches on power loss"},
		{name: "max-connections", env: "DASHSTREAM_MAX_CONNECTIONS", arg: "N", serveDef: "10000", demoDef: "10000",
			help: "global WebSocket cap (HTTP 503 beyond)"},
		{name: "auth-token", env: "DASHSTREAM_AUTH_TOKEN", arg: "TOKEN",
			help: "token required on /ws and /api/* (prefer the variable: flags show in ps)"},
		{name: "admin-token", env: "DASHSTREAM_ADMIN_TOKEN", arg: "TOKEN",
			help: "token that allows cursor_reset; unset = cursor_reset always refused"},
		{name: "allowed-origins", env: "DASHSTREAM_ALLOWED_ORIGINS", arg: "LIST",
			help: "comma-separated scheme://host[:port] WebSocket origins; unset = any"},
		{name: "log-format", env: "DASHSTREAM_LOG_FORMAT", arg: "FORMAT", serveDef: "text", demoDef: "text",
			help: "text or json"},
		{name: "ingest-batch-records", env: "DASHSTREAM_INGEST_BATCH_RECORDS", arg: "N",
			serveDef: strconv.Itoa(ingest.DefaultBatchMaxRecords), demoDef: strconv.Itoa(ingest.DefaultBatchMaxRecords),
			help: "max records per store append"},
		{name: "ingest-batch-bytes", env: "DASHSTREAM_INGEST_BATCH_BYTES", arg: "SIZE",
			serveDef: formatBytes(ingest.DefaultBatchMaxBytes), demoDef: formatBytes(ingest.DefaultBatchMaxBytes),
			help: "max payload bytes per store append"},
		{name: "kafka-commit-offsets", env: "DASHSTREAM_KAFKA_COMMIT_OFFSETS", arg: "BOOL", serveDef: "false", demoDef: "false", isBool: true,
			help: "commit the store's offsets to KAFKA_GROUP_ID, for external lag tools only"},

		{name: "addr", arg: "HOST:PORT", demoDef: "WEBSOCKET_HOST:WEBSOCKET_PORT, i.e. 127.0.0.1:3002..3005", demoOnly: true,
			help: "HTTP listen address; replaces WEBSOCKET_HOST and WEBSOCKET_PORT, exactly this port"},
		{name: "kafka-addr", arg: "HOST:PORT", demoDef: defaultKafkaAddr, demoOnly: true,
			help: "embedded Kafka broker address (KAFKA_BROKERS is ignored in demo)"},
		{name: "runs-per-second", arg: "N", demoDef: "2", demoOnly: true,
			help: "synthetic graph runs produced per second; 0 = no producer"},
		{name: "shape", arg: "SHAPE", demoDef: synth.ShapeMixed, demoOnly: true,
			help: "synthetic graph shape: " + strings.Join(synth.Shapes(), "|")},
		{name: "min-messages", arg: "N", demoDef: "0", demoOnly: true,
			help: "each synthetic run carries at least this many messages"},
	}
}

// cfgEnvRow is one line of the usage's table of reference variables.
type cfgEnvRow struct{ name, def, meaning string }

// cfgEnvRows lists the reference environment variables read (reference
// §9); they have no flags.
func cfgEnvRows(mode string) []cfgEnvRow {
	brokers := cfgEnvRow{"KAFKA_BROKERS", ingest.DefaultBrokers, "bootstrap brokers, comma-separated"}
	host := cfgEnvRow{"WEBSOCKET_HOST", defaultHTTPHost, "HTTP bind host"}
	port := cfgEnvRow{"WEBSOCKET_PORT", "3002..3005", "set: bind exactly this port or fail"}
	if mode == modeDemo {
		brokers = cfgEnvRow{"KAFKA_BROKERS", "-", "ignored: demo runs its own broker (--kafka-addr)"}
		host.meaning += " (--addr overrides)"
		port.meaning += " (--addr overrides)"
	}
	return []cfgEnvRow{
		brokers,
		{"KAFKA_TOPIC", ingest.DefaultTopic, "consumed topic"},
		{"KAFKA_GROUP_ID", ingest.DefaultGroupID, "consumer group (resume namespace)"},
		{"KAFKA_DLQ_TOPIC", "<topic>-dlq", "dead-letter topic"},
		{"KAFKA_CLUSTER_ID", "-", "adds the cluster id to the resume namespace"},
		{"KAFKA_AUTO_OFFSET_RESET", "earliest", "earliest|latest, for partitions the store has not seen"},
		{"KAFKA_ON_DECODE_ERROR", "skip", "skip|pause"},
		{"KAFKA_OLD_DATA_USE_TIMESTAMP", "false", "classify old data by timestamp"},
		{"KAFKA_OLD_DATA_GRACE_SECONDS", "30", "grace for timestamp classification"},
		{"KAFKA_LAG_CHECK_INTERVAL_SECS", "10", "lag monitor period"},
		{"KAFKA_LAG_STALE_PARTITION_SECS", "60", "stale partition warning"},
		{"KAFKA_SECURITY_PROTOCOL", "plaintext", "plaintext|ssl|sasl_plaintext|sasl_ssl"},
		{"KAFKA_SASL_MECHANISM", "-", "PLAIN|SCRAM-SHA-256|SCRAM-SHA-512 (GSSAPI unsupported)"},
		{"KAFKA_SASL_USERNAME/_PASSWORD", "-", "SASL credentials"},
		{"KAFKA_SSL_CA_LOCATION", "-", "CA bundle (PEM); unset = system pool"},
		{"KAFKA_SSL_CERTIFICATE_LOCATION", "-", "client certificate (PEM), with KAFKA_SSL_KEY_LOCATION"},
		{"KAFKA_SSL_KEY_LOCATION/_PASSWORD", "-", "client key (PEM) and its password"},
		{"KAFKA_SSL_ENDPOINT_ALGORITHM", "https", "https|none (host name verification)"},
		{"KAFKA_BROKER_ADDRESS_FAMILY", "-", "any|v4|v6"},
		{"DLQ_SEND_TIMEOUT_SECS", "5", "DLQ produce timeout (0 = default)"},
		{"DLQ_INCLUDE_FULL_PAYLOAD", "false", "base64 payload in decode-error DLQ records"},
		{"MAX_CONCURRENT_DLQ_SENDS", "100", "DLQ in-flight cap (0 = drop all)"},
		host,
		port,
		{"WEBSOCKET_BUFFER_SIZE", strconv.Itoa(defaultsFor(mode).tailRecords), "records in the shared in-memory tail (0 = default)"},
		{"WEBSOCKET_MAX_PAYLOAD_BYTES", "10485760", "largest accepted record"},
		{"WEBSOCKET_MAX_CONNECTIONS_PER_IP", "10", "per-IP sockets (0 = reject everyone)"},
		{"WEBSOCKET_TRUSTED_PROXY_IPS", "-", "comma-separated proxy IPs whose X-Forwarded-For is used"},
		{"WEBSOCKET_SEND_TIMEOUT_SECS", "5", "per-frame send timeout (0 = default)"},
		{"SLOW_CLIENT_DISCONNECT_THRESHOLD", "1000", "lagged records before disconnect (0 = never)"},
		{"SLOW_CLIENT_LAG_WINDOW_SECS", "60", "lag window (0 = connection lifetime)"},
		{"REPLAY_TIMEOUT_SECS", "30", "a resume ends after this long without progress (as a whole with REPLAY_MAX_TOTAL) (0 = default)"},
		{"REPLAY_MAX_TOTAL", "0", "records per resume (0 = no cap)"},
		{"REDIS_URL", defaultRedisURL, "Redis store address (only with --store redis)"},
		{"REDIS_MESSAGE_TTL_SECS", "3600", "Redis key TTL (0 = default; only with --store redis)"},
		{"REDIS_MAX_SEQUENCES", strconv.Itoa(defaultRedisMaxSeqs), "Redis records per partition, unless --retention-records is set"},
		{"EXPECTED_SCHEMAS_PATH", "see meaning", "expected-schema file (default <data dir>/" + expectedSchemasFile + ")"},
		{"RUST_LOG", "info", "log level: error|warn|info|debug|trace (most verbose directive wins)"},
		{"OTEL_*", "-", "accepted and ignored"},
		{"GIT_COMMIT_SHA, BUILD_DATE", defaultBuildInfo, "build identity in /version"},
	}
}

// writeConfigUsage prints the flags of mode with their environment
// variables, then the reference variables read.
func writeConfigUsage(w io.Writer, mode string) {
	fmt.Fprintf(w, "usage: dashstream %s [flags]\n\n", mode)
	if mode == modeDemo {
		fmt.Fprintln(w, "Runs an embedded Kafka broker, a synthetic producer and the server in one process.")
	} else {
		fmt.Fprintln(w, "Consumes Kafka, keeps the replay store and serves WebSocket clients and the UI.")
	}
	fmt.Fprintln(w, "Each flag overrides the environment variable shown beside it. Sizes take")
	fmt.Fprintln(w, "KiB/MiB/GiB (or KB/MB/GB) suffixes; durations are Go durations (90m, 72h).")
	fmt.Fprintln(w, "\nFlags:")
	for _, f := range cfgFlags() {
		if f.demoOnly && mode != modeDemo {
			continue
		}
		def := f.serveDef
		if mode == modeDemo {
			def = f.demoDef
		}
		line := fmt.Sprintf("  --%s %s", f.name, f.arg)
		if f.env != "" {
			line = fmt.Sprintf("%-34s %s", line, f.env)
		}
		if def != "" {
			line += " (default " + def + ")"
		}
		fmt.Fprintf(w, "%s\n        %s\n", line, f.help)
	}
	fmt.Fprintln(w, "\nEnvironment (reference settings, no flags):")
	fmt.Fprintf(w, "  %-33s %-22s %s\n", "VARIABLE", "DEFAULT", "MEANING")
	for _, r := range cfgEnvRows(mode) {
		fmt.Fprintf(w, "  %-33s %-22s %s\n", r.name, r.def, r.meaning)
	}
	fmt.Fprintln(w, "\nA set but invalid value stops startup with a message naming it.")
}

// cfgFlagValue is a flag holding its raw text, so flag and environment
// values go through the same parser and errors name what was given.
type cfgFlagValue struct {
	name   string
	value  string
	set    bool
	isBool bool
}

func (v *cfgFlagValue) String() string {
	if v == nil {
		return ""
	}
	return v.value
}

func (v *cfgFlagValue) Set(s string) error {
	v.value, v.set = s, true
	return nil
}

// IsBoolFlag lets --fsync stand for --fsync=true.
func (v *cfgFlagValue) IsBoolFlag() bool { return v.isBool }

// cfgSource reads settings from flags, then the environment, and collects
// every error so a user fixes them all in one go.
type cfgSource struct {
	getenv func(string) string
	byEnv  map[string]*cfgFlagValue // flags that shadow an environment variable
	errs   []error
}

// get returns a setting's trimmed value and the name to report: the flag
// when it was given (even empty, which then means "default"), else the
// environment variable.
func (s *cfgSource) get(env string) (value, name string) {
	if f := s.byEnv[env]; f != nil && f.set {
		return strings.TrimSpace(f.value), "--" + f.name
	}
	return strings.TrimSpace(s.getenv(env)), env
}

// getFlag returns a flag-only setting's value and whether it was given.
func getFlag(f *cfgFlagValue) (string, bool) {
	return strings.TrimSpace(f.value), f.set
}

func (s *cfgSource) fail(name, value, why string) {
	s.errs = append(s.errs, fmt.Errorf("%s=%q: %s", name, value, why))
}

// integer parses a setting in [lo, hi]; unset gives def, and so does 0
// when zeroIsDefault (the reference's "0 ⇒ default" mappings).
func (s *cfgSource) integer(env string, def, lo, hi int64, zeroIsDefault bool) int64 {
	v, name := s.get(env)
	if v == "" {
		return def
	}
	return s.parseInt(name, v, def, lo, hi, zeroIsDefault)
}

func (s *cfgSource) parseInt(name, v string, def, lo, hi int64, zeroIsDefault bool) int64 {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		s.fail(name, v, "not an integer")
		return def
	}
	if n == 0 && zeroIsDefault {
		return def
	}
	if n < lo || n > hi {
		s.fail(name, v, fmt.Sprintf("out of range [%d, %d]", lo, hi))
		return def
	}
	return n
}

// seconds parses a whole number of seconds ≥ 0; unset gives def, and so
// does 0 when zeroIsDefault.
func (s *cfgSource) seconds(env string, def time.Duration, zeroIsDefault bool) time.Duration {
	v, name := s.get(env)
	if v == "" {
		return def
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		s.fail(name, v, "not a whole number of seconds")
		return def
	}
	if n == 0 && zeroIsDefault {
		return def
	}
	if n < 0 || n > maxSecondsSetting {
		s.fail(name, v, fmt.Sprintf("out of range [0, %d] seconds", maxSecondsSetting))
		return def
	}
	return time.Duration(n) * time.Second
}

// duration parses a non-negative Go duration.
func (s *cfgSource) duration(env string, def time.Duration) time.Duration {
	v, name := s.get(env)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		s.fail(name, v, "not a Go duration (e.g. 72h)")
		return def
	}
	if d < 0 {
		s.fail(name, v, "must not be negative (0 = no limit)")
		return def
	}
	return d
}

// size parses a byte count with an optional KiB/MiB/GiB or KB/MB/GB suffix
// (ingest.ParseSize).
func (s *cfgSource) size(env string, def int64) int64 {
	v, name := s.get(env)
	if v == "" {
		return def
	}
	n, err := ingest.ParseSize(v)
	if err != nil {
		s.fail(name, v, err.Error())
		return def
	}
	return n
}

// boolean parses true/false, 1/0, yes/no, on/off (case-insensitive).
func (s *cfgSource) boolean(env string, def bool) bool {
	v, name := s.get(env)
	b, ok := parseBool(v, def)
	if !ok {
		s.fail(name, v, "want true or false")
	}
	return b
}

func parseBool(v string, def bool) (b, ok bool) {
	switch strings.ToLower(v) {
	case "":
		return def, true
	case "true", "1", "yes", "on":
		return true, true
	case "false", "0", "no", "off":
		return false, true
	}
	return def, false
}

// enum parses a case-insensitive choice; unset gives def.
func (s *cfgSource) enum(env, def string, choices ...string) string {
	v, name := s.get(env)
	if v == "" {
		return def
	}
	if l := strings.ToLower(v); slices.Contains(choices, l) {
		return l
	}
	s.fail(name, v, "want "+joinChoices(choices))
	return def
}

func joinChoices(c []string) string {
	if len(c) < 2 {
		return strings.Join(c, "")
	}
	return strings.Join(c[:len(c)-1], ", ") + " or " + c[len(c)-1]
}

// token reads a secret. Its value never appears in errors or logs.
func (s *cfgSource) token(env string) string {
	v, name := s.get(env)
	for _, r := range v {
		if r <= ' ' || r >= 0x7f {
			s.errs = append(s.errs, fmt.Errorf("%s: contains a space, control or non-ASCII character (value not shown); a token must fit an Authorization header", name))
			return ""
		}
	}
	return v
}

// loadConfig reads the configuration of mode ("serve" or "demo") from args
// (flags) and the environment through getenv (os.Getenv in production).
// Flags override the environment. Every set but invalid value is reported,
// together, in the returned error (errors.Join), naming the variable or
// flag and its value. With -h it prints the usage to stderr and returns
// flag.ErrHelp.
func loadConfig(mode string, args []string, getenv func(string) string) (*config, error) {
	return loadConfigTo(mode, args, getenv, os.Stderr)
}

// loadConfigTo is loadConfig with the usage and flag errors written to w.
func loadConfigTo(mode string, args []string, getenv func(string) string, w io.Writer) (*config, error) {
	if mode != modeServe && mode != modeDemo {
		return nil, fmt.Errorf("loadConfig: unknown mode %q", mode)
	}
	fs := flag.NewFlagSet(mode, flag.ContinueOnError)
	fs.SetOutput(w)
	fs.Usage = func() { writeConfigUsage(w, mode) }
	src := &cfgSource{getenv: getenv, byEnv: map[string]*cfgFlagValue{}}
	demoFlags := map[string]*cfgFlagValue{}
	for _, f := range cfgFlags() {
		if f.demoOnly && mode != modeDemo {
			continue
		}
		v := &cfgFlagValue{name: f.name, isBool: f.isBool}
		fs.Var(v, f.name, f.help)
		if f.env != "" {
			src.byEnv[f.env] = v
		} else {
			demoFlags[f.name] = v
		}
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (%s takes only flags, and true/false flags take --flag=false; see -h)", fs.Arg(0), mode)
	}
	c := &config{Mode: mode}
	c.loadIngest(src)
	c.loadStore(src)
	c.loadHub(src)
	c.loadHTTP(src)
	if mode == modeDemo {
		c.loadDemo(src, demoFlags)
	}
	c.loadMisc(src)
	c.collectIgnored(src)
	if len(src.errs) > 0 {
		return nil, errors.Join(src.errs...)
	}
	return c, nil
}

// loadIngest reuses ingest.ConfigFromEnv, feeding it the flag values of
// the DASHSTREAM_INGEST_* settings and, in demo, hiding KAFKA_BROKERS.
func (c *config) loadIngest(src *cfgSource) {
	c.KafkaClusterID = strings.TrimSpace(src.getenv("KAFKA_CLUSTER_ID"))
	overlay := func(name string) string {
		if f := src.byEnv[name]; f != nil && f.set {
			return f.value
		}
		if c.Mode == modeDemo && name == "KAFKA_BROKERS" {
			return ""
		}
		return src.getenv(name)
	}
	ic, err := ingest.ConfigFromEnv(overlay)
	if err != nil {
		for env, f := range src.byEnv {
			if f.set && strings.Contains(err.Error(), env) {
				err = fmt.Errorf("%w (given as --%s)", err, f.name)
				break
			}
		}
		src.errs = append(src.errs, err)
	}
	c.Ingest = ic
}

// loadStore reads DASHSTREAM_STORE, the data dir, retention, fsync and
// REDIS_URL, and checks retention against the file cap (D1).
func (c *config) loadStore(src *cfgSource) {
	d := defaultsFor(c.Mode)
	st := &c.Store
	st.Kind = src.enum("DASHSTREAM_STORE", "bolt", "bolt", "memory", "redis")

	r := &st.Retention
	nerrs := len(src.errs)
	r.MaxRecordsPerPartition = src.integer("DASHSTREAM_RETENTION_RECORDS", 0, 0, math.MaxInt64, false)
	r.MaxAge = src.duration("DASHSTREAM_RETENTION_AGE", d.retentionAge)
	r.MaxBytes = src.size("DASHSTREAM_RETENTION_BYTES", d.retentionBytes)
	r.MaxFileBytes = src.size("DASHSTREAM_MAX_DB_BYTES", d.maxDBBytes)
	capValue, capName := src.get("DASHSTREAM_MAX_DB_BYTES")
	switch {
	case len(src.errs) > nerrs:
		// A size did not parse: comparing it with a default would confuse.
	case r.MaxFileBytes > 0 && r.MaxFileBytes < minMaxDBBytes:
		src.fail(capName, capValue, fmt.Sprintf("below the minimum %s (0 = no cap)", formatBytes(minMaxDBBytes)))
	case st.Kind == "bolt" && r.MaxFileBytes > 0 && r.MaxBytes > r.MaxFileBytes/10*8:
		// Only bolt has a file for the cap to bound; the threshold is
		// bolt.ValidateRetention's.
		v, name := src.get("DASHSTREAM_RETENTION_BYTES")
		if v == "" {
			v = formatBytes(r.MaxBytes)
		}
		if capValue == "" {
			capValue = formatBytes(r.MaxFileBytes)
		}
		src.fail(name, v, fmt.Sprintf("above 0.8 x %s=%q (%s): lower the retention or raise the cap",
			capName, capValue, formatBytes(r.MaxFileBytes/10*8)))
	case st.Kind == "bolt":
		if err := bolt.ValidateRetention(*r); err != nil { // guards against drift from bolt's rules
			src.errs = append(src.errs, fmt.Errorf("retention: %w", err))
		}
	}
	st.Fsync = src.boolean("DASHSTREAM_FSYNC", true)

	if st.Kind == "redis" {
		raw := strings.TrimSpace(src.getenv("REDIS_URL"))
		if raw == "" {
			raw = defaultRedisURL
		}
		u, err := url.Parse(raw)
		switch {
		case err != nil:
			src.errs = append(src.errs, errors.New("REDIS_URL: not a URL (value not shown: it may hold a password)"))
		case u.Scheme != "redis" && u.Scheme != "rediss" && u.Scheme != "unix":
			src.fail("REDIS_URL", u.Redacted(), "want a redis://, rediss:// or unix:// URL")
		case u.Scheme != "unix" && u.Host == "":
			src.fail("REDIS_URL", u.Redacted(), "no host")
		default:
			st.RedisURL = raw
		}
		c.loadRedisRetention(src)
	}

	dir, name := src.get("DASHSTREAM_DATA_DIR")
	if dir == "" {
		def, err := defaultDataDir(src.getenv)
		// The data dir is needed for the bolt file, the default
		// expected-schema file and the demo broker's log.
		needed := st.Kind == "bolt" || c.Mode == modeDemo || strings.TrimSpace(src.getenv("EXPECTED_SCHEMAS_PATH")) == ""
		if err != nil && needed {
			src.errs = append(src.errs, fmt.Errorf("DASHSTREAM_DATA_DIR: unset, and %v; set DASHSTREAM_DATA_DIR or --data-dir", err))
		}
		dir = def
	} else if strings.ContainsRune(dir, 0) {
		src.fail(name, dir, "not a path")
	}
	if dir != "" {
		dir = filepath.Clean(dir)
	}
	st.DataDir = dir
}

// loadRedisRetention reads REDIS_MESSAGE_TTL_SECS and REDIS_MAX_SEQUENCES
// (reference §4.2, §4.6) for the Redis store. Like the reference it keeps
// REDIS_MAX_SEQUENCES (10000) records per partition unless
// DASHSTREAM_RETENTION_RECORDS says otherwise (its 0 = no count limit, the
// TTL alone bounds the buffer). Age and byte retention do not apply:
// keys expire by TTL.
func (c *config) loadRedisRetention(src *cfgSource) {
	st := &c.Store
	st.RedisTTL = src.seconds("REDIS_MESSAGE_TTL_SECS", defaultRedisTTL, true)
	maxSeqs := int64(defaultRedisMaxSeqs)
	if v, name := src.get("REDIS_MAX_SEQUENCES"); v != "" {
		maxSeqs = src.parseInt(name, v, maxSeqs, 0, math.MaxInt64, false)
		if maxSeqs == 0 {
			// The reference would trim every ZSET to nothing.
			src.fail(name, v, "0 would keep no record; set DASHSTREAM_RETENTION_RECORDS=0 for no count limit")
		}
	}
	if v, _ := src.get("DASHSTREAM_RETENTION_RECORDS"); v == "" {
		st.Retention.MaxRecordsPerPartition = maxSeqs
	}
	st.Retention.MaxAge, st.Retention.MaxBytes, st.Retention.MaxFileBytes = 0, 0, 0
}

// defaultDataDir is $XDG_CACHE_HOME/dashstream, else ~/.cache/dashstream:
// os.UserCacheDir's Unix rule on every platform (DECISIONS D1), read
// through getenv so tests are hermetic. A relative XDG_CACHE_HOME is
// ignored, as the XDG spec asks. Without HOME, %LocalAppData% is used
// (Windows).
func defaultDataDir(getenv func(string) string) (string, error) {
	if x := strings.TrimSpace(getenv("XDG_CACHE_HOME")); x != "" && filepath.IsAbs(x) {
		return filepath.Join(x, "dashstream"), nil
	}
	if h := strings.TrimSpace(getenv("HOME")); h != "" {
		return filepath.Join(h, ".cache", "dashstream"), nil
	}
	if l := strings.TrimSpace(getenv("LocalAppData")); l != "" && filepath.IsAbs(l) {
		return filepath.Join(l, "dashstream"), nil // Windows, where HOME is rarely set
	}
	return "", errors.New("neither $XDG_CACHE_HOME (absolute) nor $HOME is set")
}

// loadHub reads the WebSocket settings (reference §6, D4, D5).
func (c *config) loadHub(src *cfgSource) {
	h := hub.DefaultConfig()
	h.TailRecords = defaultsFor(c.Mode).tailRecords
	h.TailRecords = int(src.integer("WEBSOCKET_BUFFER_SIZE", int64(h.TailRecords), 1, 1<<24, true))
	h.SendTimeout = src.seconds("WEBSOCKET_SEND_TIMEOUT_SECS", h.SendTimeout, true)
	h.ReplayTimeout = src.seconds("REPLAY_TIMEOUT_SECS", h.ReplayTimeout, true)
	h.ReplayMaxTotal = int(src.integer("REPLAY_MAX_TOTAL", 0, 0, math.MaxInt32, false)) // D4: 0 = no cap
	h.SlowThreshold = src.integer("SLOW_CLIENT_DISCONNECT_THRESHOLD", h.SlowThreshold, 0, math.MaxInt64, false)
	h.SlowWindow = src.seconds("SLOW_CLIENT_LAG_WINDOW_SECS", h.SlowWindow, false)
	h.MaxConnsPerIP = int(src.integer("WEBSOCKET_MAX_CONNECTIONS_PER_IP", int64(h.MaxConnsPerIP), 0, 1<<24, false))
	if h.MaxConnsPerIP == 0 {
		h.MaxConnsPerIP = -1 // reference: 0 rejects everyone; hub.Config says so with a negative value
	}
	h.MaxConns = int(src.integer("DASHSTREAM_MAX_CONNECTIONS", int64(h.MaxConns), 1, 1<<24, false))

	if v, name := src.get("WEBSOCKET_TRUSTED_PROXY_IPS"); v != "" {
		for p := range strings.SplitSeq(v, ",") {
			if p = strings.TrimSpace(p); p == "" {
				continue
			}
			a, err := netip.ParseAddr(p)
			if err != nil {
				src.fail(name, v, fmt.Sprintf("%q is not an IP address", p))
				continue
			}
			h.TrustedProxies = append(h.TrustedProxies, a.Unmap().String())
		}
	}
	h.AuthToken = src.token("DASHSTREAM_AUTH_TOKEN")
	h.AdminToken = src.token("DASHSTREAM_ADMIN_TOKEN")
	if v, name := src.get("DASHSTREAM_ALLOWED_ORIGINS"); v != "" {
		bad := false
		for o := range strings.SplitSeq(v, ",") {
			if o = strings.TrimSpace(o); o == "" {
				continue
			}
			n, err := normalizeOrigin(o)
			if err != nil {
				src.fail(name, v, fmt.Sprintf("%q: %v", o, err))
				bad = true
				continue
			}
			if !slices.Contains(h.AllowedOrigins, n) {
				h.AllowedOrigins = append(h.AllowedOrigins, n)
			}
		}
		if len(h.AllowedOrigins) == 0 && !bad {
			src.fail(name, v, "no origin (unset it to accept any)")
		}
	}
	c.Hub = h
}

// normalizeOrigin checks that o is an exact scheme://host[:port] origin,
// as browsers send it, and returns it lower-cased without a default port
// (https://x:443 ⇒ https://x) so it compares equal to the Origin header.
func normalizeOrigin(o string) (string, error) {
	u, err := url.Parse(strings.TrimSuffix(o, "/"))
	if err != nil {
		return "", errors.New("not a URL")
	}
	switch {
	case u.Scheme == "" || u.Opaque != "" || u.Host == "" || u.Hostname() == "":
		return "", errors.New("want scheme://host[:port]")
	case u.User != nil:
		return "", errors.New("an origin has no user info")
	case u.Path != "" || u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return "", errors.New("an origin has no path, query or fragment")
	}
	scheme, host, port := strings.ToLower(u.Scheme), strings.ToLower(u.Hostname()), u.Port()
	if (scheme == "https" && port == "443") || (scheme == "http" && port == "80") {
		port = ""
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" {
		return scheme + "://" + host + ":" + port, nil
	}
	return scheme + "://" + host, nil
}

// loadHTTP reads WEBSOCKET_HOST and WEBSOCKET_PORT (reference §2.1, D1).
func (c *config) loadHTTP(src *cfgSource) {
	c.HTTPHost = defaultHTTPHost
	if v, name := src.get("WEBSOCKET_HOST"); v != "" {
		h, err := parseHost(v)
		if err != nil {
			src.fail(name, v, err.Error())
		} else {
			c.HTTPHost = h
		}
	}
	c.HTTPPorts = defaultHTTPPorts()
	if v, name := src.get("WEBSOCKET_PORT"); v != "" {
		p, err := parsePort(v)
		if err != nil {
			src.fail(name, v, err.Error()+"; an explicit port is bound exactly or startup fails")
		} else {
			c.HTTPPorts = []int{p}
		}
	}
}

// parseHost accepts an IP literal (brackets optional) or a host name.
func parseHost(v string) (string, error) {
	h := strings.TrimSuffix(strings.TrimPrefix(v, "["), "]")
	if _, err := netip.ParseAddr(h); err == nil {
		return h, nil
	}
	for _, r := range h {
		if !(r == '.' || r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return "", errors.New("not a host name or IP address")
		}
	}
	if h == "" {
		return "", errors.New("empty host")
	}
	return h, nil
}

// parsePort parses a TCP port, 0..65535 (0 = any free port).
func parsePort(v string) (int, error) {
	n, err := strconv.ParseUint(v, 10, 16)
	if err != nil {
		return 0, errors.New("not a port number (0-65535)")
	}
	return int(n), nil
}

// parseHostPort splits HOST:PORT; an empty host means every interface.
func parseHostPort(v string) (string, int, error) {
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		return "", 0, errors.New("want HOST:PORT (e.g. 127.0.0.1:3002)")
	}
	if host != "" {
		if host, err = parseHost(host); err != nil {
			return "", 0, err
		}
	}
	p, err := parsePort(port)
	if err != nil {
		return "", 0, err
	}
	return host, p, nil
}

// loadDemo reads the demo-only flags.
func (c *config) loadDemo(src *cfgSource, flags map[string]*cfgFlagValue) {
	if v, set := getFlag(flags["addr"]); set && v != "" {
		if host, port, err := parseHostPort(v); err != nil {
			src.fail("--addr", v, err.Error())
		} else {
			c.HTTPHost, c.HTTPPorts = host, []int{port}
		}
	}
	c.KafkaAddr = defaultKafkaAddr
	if v, set := getFlag(flags["kafka-addr"]); set && v != "" {
		if _, _, err := parseHostPort(v); err != nil {
			src.fail("--kafka-addr", v, err.Error())
		} else {
			c.KafkaAddr = v
		}
	}
	c.Ingest.Brokers = []string{c.KafkaAddr}

	c.RunsPerSecond = defaultRunsPerSecond
	if v, set := getFlag(flags["runs-per-second"]); set && v != "" {
		r, err := strconv.ParseFloat(v, 64)
		switch {
		case err != nil:
			src.fail("--runs-per-second", v, "not a number")
		case r < 0 || math.IsNaN(r) || math.IsInf(r, 0) || r > 1e6:
			src.fail("--runs-per-second", v, "out of range [0, 1000000] (0 = no producer)")
		default:
			c.RunsPerSecond = r
		}
	}
	c.Shape = synth.ShapeMixed
	if v, set := getFlag(flags["shape"]); set && v != "" {
		if l := strings.ToLower(v); slices.Contains(synth.Shapes(), l) {
			c.Shape = l
		} else {
			src.fail("--shape", v, "want "+joinChoices(synth.Shapes()))
		}
	}
	if v, set := getFlag(flags["min-messages"]); set && v != "" {
		c.MinMessages = int(src.parseInt("--min-messages", v, 0, 0, 1<<20, false))
	}
}

// loadMisc reads logging, build identity and the expected-schema path.
func (c *config) loadMisc(src *cfgSource) {
	if v := strings.TrimSpace(src.getenv("EXPECTED_SCHEMAS_PATH")); v != "" {
		c.ExpectedSchemasPath = v
	} else if c.Store.DataDir != "" {
		c.ExpectedSchemasPath = filepath.Join(c.Store.DataDir, expectedSchemasFile)
	}
	c.LogLevel = slog.LevelInfo
	if v := strings.TrimSpace(src.getenv("RUST_LOG")); v != "" {
		l, err := parseRustLog(v)
		if err != nil {
			src.fail("RUST_LOG", v, err.Error())
		} else {
			c.LogLevel = l
		}
	}
	c.LogFormat = src.enum("DASHSTREAM_LOG_FORMAT", "text", "text", "json")
	c.GitSHA = cmp.Or(strings.TrimSpace(src.getenv("GIT_COMMIT_SHA")), defaultBuildInfo)
	c.BuildDate = cmp.Or(strings.TrimSpace(src.getenv("BUILD_DATE")), defaultBuildInfo)
}

// parseRustLog maps an env_logger filter (RUST_LOG) to one slog level. Go
// has one level for the whole process, so the most verbose level named by
// any directive wins: "info,foo=debug" ⇒ debug, "warn" ⇒ warn. A bare
// target ("foo") enables everything for it in env_logger, so it counts as
// trace; a "/regex" suffix is ignored. Levels are error, warn, info,
// debug, trace (debug−4 in slog) and off (mapped to error: errors are
// always logged). Level names are case-insensitive; a bad level after "="
// is an error. A filter with no directive gives info.
func parseRustLog(spec string) (slog.Level, error) {
	spec, _, _ = strings.Cut(spec, "/")
	best, found := slog.LevelInfo, false
	for d := range strings.SplitSeq(spec, ",") {
		if d = strings.TrimSpace(d); d == "" {
			continue
		}
		var l slog.Level
		if _, lvl, ok := strings.Cut(d, "="); ok {
			var known bool
			if l, known = rustLevel(lvl); !known {
				return 0, fmt.Errorf("%q in %q is not a level (want error, warn, info, debug, trace or off)", strings.TrimSpace(lvl), d)
			}
		} else if lv, known := rustLevel(d); known {
			l = lv
		} else {
			l = levelTrace
		}
		if !found || l < best {
			best, found = l, true
		}
	}
	return best, nil
}

// rustLevel maps one env_logger level name to slog.
func rustLevel(s string) (slog.Level, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "off", "error":
		return slog.LevelError, true
	case "warn":
		return slog.LevelWarn, true
	case "info":
		return slog.LevelInfo, true
	case "debug":
		return slog.LevelDebug, true
	case "trace":
		return levelTrace, true
	}
	return 0, false
}

// otelNames are the OpenTelemetry variables checked through getenv even
// when the process environment does not list them (tests); any other
// OTEL_* name found in os.Environ is checked too.
func otelNames() []string {
	return []string{
		"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL",
		"OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TIMEOUT", "OTEL_EXPORTER_OTLP_INSECURE",
		"OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_TRACES_EXPORTER", "OTEL_TRACES_SAMPLER",
		"OTEL_TRACES_SAMPLER_ARG", "OTEL_PROPAGATORS", "OTEL_SDK_DISABLED", "OTEL_LOG_LEVEL",
		"OTEL_METRICS_EXPORTER", "OTEL_LOGS_EXPORTER",
	}
}

// collectIgnored lists the settings accepted without effect (D1). Only
// names getenv reports as set count, so a test's getenv decides.
func (c *config) collectIgnored(src *cfgSource) {
	names := otelNames()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "OTEL_") && !slices.Contains(names, k) {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	var otel []string
	for _, n := range names {
		if src.getenv(n) != "" {
			otel = append(otel, n)
		}
	}
	if len(otel) > 0 {
		c.Ignored = append(c.Ignored, strings.Join(otel, ", ")+" "+otelIgnoredExplanation)
	}
	if c.Mode == modeDemo {
		if v := strings.TrimSpace(src.getenv("KAFKA_BROKERS")); v != "" {
			c.Ignored = append(c.Ignored, fmt.Sprintf("KAFKA_BROKERS=%q ignored: demo consumes its embedded broker (--kafka-addr %s)", v, c.KafkaAddr))
		}
	}
	if c.Store.Kind == "redis" {
		if v, name := src.get("DASHSTREAM_RETENTION_RECORDS"); v != "" && strings.TrimSpace(src.getenv("REDIS_MAX_SEQUENCES")) != "" {
			c.Ignored = append(c.Ignored, fmt.Sprintf("REDIS_MAX_SEQUENCES ignored: %s=%s sets the count limit", name, v))
		}
		for _, env := range []string{"DASHSTREAM_RETENTION_AGE", "DASHSTREAM_RETENTION_BYTES", "DASHSTREAM_MAX_DB_BYTES"} {
			if v, name := src.get(env); v != "" {
				c.Ignored = append(c.Ignored, fmt.Sprintf("%s ignored: it does not apply to the Redis store (keys expire after REDIS_MESSAGE_TTL_SECS)", name))
			}
		}
		for _, n := range []string{"REDIS_MAX_CONCURRENT_WRITES", "REDIS_ZCARD_CHECK_CADENCE", "REDIS_CLEAR_TIMEOUT_SECS"} {
			if strings.TrimSpace(src.getenv(n)) != "" {
				c.Ignored = append(c.Ignored, n+" ignored: the Redis store has no such setting (it writes and trims each ingest batch in one script, synchronously)")
			}
		}
	} else {
		if strings.TrimSpace(src.getenv("REDIS_URL")) != "" {
			c.Ignored = append(c.Ignored, fmt.Sprintf("REDIS_URL ignored: the store is %s (set DASHSTREAM_STORE=redis to use Redis)", c.Store.Kind))
		}
		for _, n := range []string{"REDIS_MESSAGE_TTL_SECS", "REDIS_MAX_SEQUENCES", "REDIS_MAX_CONCURRENT_WRITES", "REDIS_ZCARD_CHECK_CADENCE", "REDIS_CLEAR_TIMEOUT_SECS"} {
			if strings.TrimSpace(src.getenv(n)) != "" {
				c.Ignored = append(c.Ignored, fmt.Sprintf("%s ignored: the store is %s, not redis", n, c.Store.Kind))
			}
		}
	}
	if strings.TrimSpace(src.getenv("REPLAY_BUFFER_MEMORY_SIZE")) != "" {
		c.Ignored = append(c.Ignored, "REPLAY_BUFFER_MEMORY_SIZE ignored: the store keeps the history; WEBSOCKET_BUFFER_SIZE sizes the in-memory tail")
	}
	sec := c.Ingest.WithDefaults().Security
	if names := sec.Ignored(); len(names) > 0 {
		c.Ignored = append(c.Ignored, fmt.Sprintf("%s ignored: KAFKA_SECURITY_PROTOCOL is %s", strings.Join(names, ", "), sec.Protocol))
	}
}

// Summary returns a few lines for the startup log: store and path,
// retention in force, fsync, HTTP address(es), Kafka, and whether auth is
// on. Tokens are never printed.
func (c *config) Summary() string {
	var b strings.Builder
	st := c.Store
	switch st.Kind {
	case "memory":
		fmt.Fprintln(&b, "store: memory (nothing survives a restart)")
	case "redis":
		shown := st.RedisURL
		if u, err := url.Parse(st.RedisURL); err == nil {
			shown = u.Redacted()
		}
		fmt.Fprintf(&b, "store: redis at %s\n", shown)
	default:
		fmt.Fprintf(&b, "store: %s file %s\n", st.Kind, filepath.Join(st.DataDir, bolt.FileName))
	}
	r := st.Retention
	limit := func(n int64, f func(int64) string) string {
		if n <= 0 {
			return "no limit"
		}
		return f(n)
	}
	if st.Kind == "redis" {
		// Only the count limit and the key TTL apply (loadRedisRetention).
		fmt.Fprintf(&b, "retention: records/partition %s, key TTL %s (age and byte limits do not apply to redis)\n",
			limit(r.MaxRecordsPerPartition, func(n int64) string { return strconv.FormatInt(n, 10) }), formatDuration(st.RedisTTL))
	} else {
		fileCap := limit(r.MaxFileBytes, formatBytes)
		if st.Kind != "bolt" {
			fileCap = "n/a"
		}
		age := "no limit"
		if r.MaxAge > 0 {
			age = formatDuration(r.MaxAge)
		}
		fmt.Fprintf(&b, "retention: records/partition %s, age %s, bytes %s, file cap %s\n",
			limit(r.MaxRecordsPerPartition, func(n int64) string { return strconv.FormatInt(n, 10) }),
			age, limit(r.MaxBytes, formatBytes), fileCap)
	}
	if st.Kind == "bolt" {
		if st.Fsync {
			fmt.Fprintln(&b, "fsync: on (every commit is durable)")
		} else {
			fmt.Fprintln(&b, "fsync: off (a power loss may lose the last batches)")
		}
	}
	addrs := make([]string, len(c.HTTPPorts))
	for i, p := range c.HTTPPorts {
		addrs[i] = net.JoinHostPort(c.HTTPHost, strconv.Itoa(p))
	}
	if len(addrs) == 1 {
		fmt.Fprintf(&b, "http: %s (exactly)\n", addrs[0])
	} else {
		fmt.Fprintf(&b, "http: first free of %s\n", strings.Join(addrs, ", "))
	}
	ic := c.Ingest.WithDefaults()
	brokers := strings.Join(ic.Brokers, ",")
	if c.Mode == modeDemo {
		brokers = "embedded " + brokers
	}
	fmt.Fprintf(&b, "kafka: brokers %s, topic %s, group %s, dlq %s, security %s\n",
		brokers, ic.Topic, ic.GroupID, ic.DLQTopic, ic.Security.Protocol)
	if c.Mode == modeDemo {
		if c.RunsPerSecond > 0 {
			fmt.Fprintf(&b, "demo producer: %g runs/s, shape %s\n", c.RunsPerSecond, c.Shape)
		} else {
			fmt.Fprintln(&b, "demo producer: off")
		}
	}
	onOff := func(s string) string {
		if s == "" {
			return "off"
		}
		return "on"
	}
	origins := "any"
	if len(c.Hub.AllowedOrigins) > 0 {
		origins = strings.Join(c.Hub.AllowedOrigins, ", ")
	}
	fmt.Fprintf(&b, "auth: %s, admin (cursor_reset): %s, origins: %s\n", onOff(c.Hub.AuthToken), onOff(c.Hub.AdminToken), origins)
	if c.Hub.AuthToken == "" && !isLoopbackHost(c.HTTPHost) {
		fmt.Fprintf(&b, "WARNING: listening on %q with no authentication; set DASHSTREAM_AUTH_TOKEN or bind 127.0.0.1\n", c.HTTPHost)
	}
	return b.String()
}

// isLoopbackHost reports whether h is 127.0.0.1, localhost or ::1 (the
// reference's list, §2.1), or any other loopback literal.
func isLoopbackHost(h string) bool {
	if strings.EqualFold(h, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(h)
	return err == nil && a.IsLoopback()
}

// formatBytes prints n with the largest binary unit dividing it exactly
// (1GiB, 256MiB, 4096), else with one decimal (819.2MiB).
func formatBytes(n int64) string {
	units := []struct {
		suffix string
		size   int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}}
	for _, u := range units {
		if n >= u.size && n%u.size == 0 {
			return strconv.FormatInt(n/u.size, 10) + u.suffix
		}
	}
	for _, u := range units {
		if n >= u.size {
			return strconv.FormatFloat(float64(n)/float64(u.size), 'f', 1, 64) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

// formatDuration prints d without trailing zero units (168h, 90m, 1h30m).
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
