package ingest

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/dashstream/dashstream/wire"
)

// Defaults of the ingest settings (reference §9, DECISIONS D1).
const (
	DefaultBrokers               = "127.0.0.1:9092"
	DefaultTopic                 = "dashstream-quality"
	DefaultGroupID               = "websocket-server-v4"
	DefaultMaxConcurrentDLQSends = 100
	DefaultDLQSendTimeout        = 5 * time.Second
	DefaultLagCheckInterval      = 10 * time.Second
	DefaultLagStalePartition     = 60 * time.Second
	DefaultOldDataGrace          = 30 * time.Second
	DefaultBatchMaxRecords       = 2000
	DefaultBatchMaxBytes         = 8 << 20
	DefaultGroupCommitInterval   = 5 * time.Second
)

// Policy is the KAFKA_ON_DECODE_ERROR policy.
type Policy string

// Policies of KAFKA_ON_DECODE_ERROR.
const (
	// PolicySkip records an invalid record's offset as an `invalid`
	// skipped range and goes on (the default).
	PolicySkip Policy = "skip"
	// PolicyPause stops the failing record's partition at that record
	// until the process restarts (see Ingester for the way out).
	PolicyPause Policy = "pause"
)

// OffsetReset is the KAFKA_AUTO_OFFSET_RESET setting.
type OffsetReset string

// Offset reset values.
const (
	ResetEarliest OffsetReset = "earliest"
	ResetLatest   OffsetReset = "latest"
)

// Security protocols of KAFKA_SECURITY_PROTOCOL.
const (
	ProtocolPlaintext     = "plaintext"
	ProtocolSSL           = "ssl"
	ProtocolSASLPlaintext = "sasl_plaintext"
	ProtocolSASLSSL       = "sasl_ssl"
)

// SASL mechanisms of KAFKA_SASL_MECHANISM that are implemented.
const (
	MechanismPlain       = "PLAIN"
	MechanismScramSHA256 = "SCRAM-SHA-256"
	MechanismScramSHA512 = "SCRAM-SHA-512"
)

// Security holds the Kafka client security settings (reference §5.1). They
// apply to every client ingest creates: consumer, admin and DLQ producer
// (see ClientOpts).
type Security struct {
	// Protocol is KAFKA_SECURITY_PROTOCOL: plaintext (default), ssl,
	// sasl_plaintext or sasl_ssl.
	Protocol string
	// SASLMechanism is KAFKA_SASL_MECHANISM: PLAIN, SCRAM-SHA-256 or
	// SCRAM-SHA-512 (GSSAPI and OAUTHBEARER are rejected as unsupported).
	SASLMechanism string
	// SASLUsername and SASLPassword are KAFKA_SASL_USERNAME and
	// KAFKA_SASL_PASSWORD (both or neither).
	SASLUsername, SASLPassword string
	// SSLCALocation is KAFKA_SSL_CA_LOCATION: a PEM bundle of trusted CAs;
	// empty means the system pool.
	SSLCALocation string
	// SSLCertificateLocation and SSLKeyLocation are
	// KAFKA_SSL_CERTIFICATE_LOCATION and KAFKA_SSL_KEY_LOCATION: the client
	// certificate and key in PEM (both or neither).
	SSLCertificateLocation, SSLKeyLocation string
	// SSLKeyPassword is KAFKA_SSL_KEY_PASSWORD, for a legacy encrypted PEM
	// key ("Proc-Type: 4,ENCRYPTED").
	SSLKeyPassword string
	// SSLEndpointAlgorithm is KAFKA_SSL_ENDPOINT_ALGORITHM: "https"
	// (default) verifies the broker host name; "none" verifies the chain
	// only.
	SSLEndpointAlgorithm string
	// AddressFamily is KAFKA_BROKER_ADDRESS_FAMILY: any, v4 or v6. Empty
	// selects v4 when a broker host is localhost or a loopback literal,
	// else any (the reference's rule).
	AddressFamily string
}

// UsesTLS reports whether the protocol needs TLS.
func (s Security) UsesTLS() bool {
	return s.Protocol == ProtocolSSL || s.Protocol == ProtocolSASLSSL
}

// UsesSASL reports whether the protocol needs SASL.
func (s Security) UsesSASL() bool {
	return s.Protocol == ProtocolSASLPlaintext || s.Protocol == ProtocolSASLSSL
}

// Ignored returns the names of the variables that are set but have no
// effect under the protocol: SASL settings without sasl_*, TLS settings
// without ssl / sasl_ssl, and KAFKA_SSL_KEY_PASSWORD without a key. A
// typo'd or forgotten KAFKA_SECURITY_PROTOCOL otherwise silently connects
// in plaintext, so the caller logs these at startup. The endpoint
// algorithm counts only when not "https" (its default, indistinguishable
// from unset after WithDefaults). Values are never returned.
func (s Security) Ignored() []string {
	var out []string
	add := func(name, v string) {
		if v != "" {
			out = append(out, name)
		}
	}
	if !s.UsesSASL() {
		add("KAFKA_SASL_MECHANISM", s.SASLMechanism)
		add("KAFKA_SASL_USERNAME", s.SASLUsername)
		add("KAFKA_SASL_PASSWORD", s.SASLPassword)
	}
	if !s.UsesTLS() {
		add("KAFKA_SSL_CA_LOCATION", s.SSLCALocation)
		add("KAFKA_SSL_CERTIFICATE_LOCATION", s.SSLCertificateLocation)
		add("KAFKA_SSL_KEY_LOCATION", s.SSLKeyLocation)
		add("KAFKA_SSL_KEY_PASSWORD", s.SSLKeyPassword)
		if s.SSLEndpointAlgorithm != "https" {
			add("KAFKA_SSL_ENDPOINT_ALGORITHM", s.SSLEndpointAlgorithm)
		}
	} else if s.SSLKeyLocation == "" {
		add("KAFKA_SSL_KEY_PASSWORD", s.SSLKeyPassword)
	}
	return out
}

// Config is every ingest setting. ConfigFromEnv fills it from the
// reference environment variables; zero values are replaced by defaults in
// New (see WithDefaults).
type Config struct {
	// Brokers is KAFKA_BROKERS, split on commas.
	Brokers []string
	// Topic is KAFKA_TOPIC.
	Topic string
	// GroupID is KAFKA_GROUP_ID. Ingest never resumes from the group's
	// offsets (the store is the resume point); it only commits to it when
	// CommitGroupOffsets is set, as a hint for external lag tools.
	GroupID string
	// DLQTopic is KAFKA_DLQ_TOPIC (default Topic + "-dlq").
	DLQTopic string
	// MaxPayloadBytes is WEBSOCKET_MAX_PAYLOAD_BYTES: the largest Kafka
	// value accepted and the cap on its decompressed size.
	MaxPayloadBytes int
	// OnDecodeError is KAFKA_ON_DECODE_ERROR.
	OnDecodeError Policy
	// AutoOffsetReset is KAFKA_AUTO_OFFSET_RESET: where a partition the
	// store has no offset for starts.
	AutoOffsetReset OffsetReset
	// OldDataUseTimestamp and OldDataGrace are KAFKA_OLD_DATA_USE_TIMESTAMP
	// and KAFKA_OLD_DATA_GRACE_SECONDS (reference §5.3).
	OldDataUseTimestamp bool
	OldDataGrace        time.Duration
	// LagCheckInterval is KAFKA_LAG_CHECK_INTERVAL_SECS; it also paces
	// partition discovery and the topic-id / log-bounds check (D11).
	LagCheckInterval time.Duration
	// LagStalePartition is KAFKA_LAG_STALE_PARTITION_SECS.
	LagStalePartition time.Duration
	// DLQIncludeFullPayload is DLQ_INCLUDE_FULL_PAYLOAD.
	DLQIncludeFullPayload bool
	// DLQSendTimeout is DLQ_SEND_TIMEOUT_SECS.
	DLQSendTimeout time.Duration
	// MaxConcurrentDLQSends is MAX_CONCURRENT_DLQ_SENDS. 0 selects the
	// default (100); a negative value drops every DLQ record (what
	// MAX_CONCURRENT_DLQ_SENDS=0 means in the reference, and maps to here).
	MaxConcurrentDLQSends int
	// BatchMaxRecords and BatchMaxBytes bound one store append
	// (DASHSTREAM_INGEST_BATCH_RECORDS, DASHSTREAM_INGEST_BATCH_BYTES).
	BatchMaxRecords int
	BatchMaxBytes   int
	// CommitGroupOffsets (DASHSTREAM_KAFKA_COMMIT_OFFSETS, default false)
	// commits the store's next offsets to GroupID every
	// GroupCommitInterval, for external lag tools only.
	CommitGroupOffsets  bool
	GroupCommitInterval time.Duration
	// Security is the KAFKA_SECURITY_PROTOCOL / SASL / SSL settings.
	Security Security
}

// WithDefaults returns c with zero fields replaced by their defaults.
func (c Config) WithDefaults() Config {
	if len(c.Brokers) == 0 {
		c.Brokers = []string{DefaultBrokers}
	}
	if c.Topic == "" {
		c.Topic = DefaultTopic
	}
	if c.GroupID == "" {
		c.GroupID = DefaultGroupID
	}
	if c.DLQTopic == "" {
		c.DLQTopic = c.Topic + "-dlq"
	}
	if c.MaxPayloadBytes <= 0 {
		c.MaxPayloadBytes = wire.DefaultMaxPayload
	}
	if c.OnDecodeError == "" {
		c.OnDecodeError = PolicySkip
	}
	if c.AutoOffsetReset == "" {
		c.AutoOffsetReset = ResetEarliest
	}
	if c.OldDataGrace < 0 {
		c.OldDataGrace = DefaultOldDataGrace
	}
	if c.LagCheckInterval <= 0 {
		c.LagCheckInterval = DefaultLagCheckInterval
	}
	if c.LagStalePartition < 0 {
		c.LagStalePartition = DefaultLagStalePartition
	}
	if c.DLQSendTimeout <= 0 {
		c.DLQSendTimeout = DefaultDLQSendTimeout
	}
	if c.MaxConcurrentDLQSends == 0 {
		c.MaxConcurrentDLQSends = DefaultMaxConcurrentDLQSends
	}
	if c.BatchMaxRecords <= 0 {
		c.BatchMaxRecords = DefaultBatchMaxRecords
	}
	if c.BatchMaxBytes <= 0 {
		c.BatchMaxBytes = DefaultBatchMaxBytes
	}
	if c.GroupCommitInterval <= 0 {
		c.GroupCommitInterval = DefaultGroupCommitInterval
	}
	if c.Security.Protocol == "" {
		c.Security.Protocol = ProtocolPlaintext
	}
	if c.Security.SSLEndpointAlgorithm == "" {
		c.Security.SSLEndpointAlgorithm = "https"
	}
	return c
}

// Validate checks c (after WithDefaults) and returns an error naming the
// environment variable of the first bad setting.
func (c Config) Validate() error {
	for _, b := range c.Brokers {
		if strings.TrimSpace(b) == "" {
			return errors.New("KAFKA_BROKERS: empty broker address")
		}
	}
	switch c.OnDecodeError {
	case PolicySkip, PolicyPause:
	default:
		return fmt.Errorf("KAFKA_ON_DECODE_ERROR=%q: want skip or pause", c.OnDecodeError)
	}
	switch c.AutoOffsetReset {
	case ResetEarliest, ResetLatest:
	default:
		return fmt.Errorf("KAFKA_AUTO_OFFSET_RESET=%q: want earliest or latest", c.AutoOffsetReset)
	}
	return c.Security.Validate()
}

// Validate checks the security settings: protocol and mechanism values,
// username and password both or neither, certificate and key both or
// neither, and the endpoint algorithm. Files are read by ClientOpts.
func (s Security) Validate() error {
	switch s.Protocol {
	case ProtocolPlaintext, ProtocolSSL, ProtocolSASLPlaintext, ProtocolSASLSSL:
	default:
		return fmt.Errorf("KAFKA_SECURITY_PROTOCOL=%q: want plaintext, ssl, sasl_plaintext or sasl_ssl", s.Protocol)
	}
	switch s.SASLMechanism {
	case "", MechanismPlain, MechanismScramSHA256, MechanismScramSHA512:
	case "GSSAPI":
		return errors.New("KAFKA_SASL_MECHANISM=GSSAPI: Kerberos is not supported by this server; use PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
	case "OAUTHBEARER":
		return errors.New("KAFKA_SASL_MECHANISM=OAUTHBEARER: not supported by this server; use PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
	default:
		return fmt.Errorf("KAFKA_SASL_MECHANISM=%q: want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", s.SASLMechanism)
	}
	if (s.SASLUsername == "") != (s.SASLPassword == "") {
		if s.SASLUsername == "" {
			return errors.New("KAFKA_SASL_PASSWORD is set but KAFKA_SASL_USERNAME is not: set both or neither")
		}
		return errors.New("KAFKA_SASL_USERNAME is set but KAFKA_SASL_PASSWORD is not: set both or neither")
	}
	if s.UsesSASL() {
		if s.SASLMechanism == "" {
			return fmt.Errorf("KAFKA_SECURITY_PROTOCOL=%s needs KAFKA_SASL_MECHANISM (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; librdkafka's default GSSAPI is not supported)", s.Protocol)
		}
		if s.SASLUsername == "" {
			return fmt.Errorf("KAFKA_SECURITY_PROTOCOL=%s with KAFKA_SASL_MECHANISM=%s needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD", s.Protocol, s.SASLMechanism)
		}
	}
	if (s.SSLCertificateLocation == "") != (s.SSLKeyLocation == "") {
		if s.SSLCertificateLocation == "" {
			return errors.New("KAFKA_SSL_KEY_LOCATION is set but KAFKA_SSL_CERTIFICATE_LOCATION is not: set both or neither")
		}
		return errors.New("KAFKA_SSL_CERTIFICATE_LOCATION is set but KAFKA_SSL_KEY_LOCATION is not: set both or neither")
	}
	switch s.SSLEndpointAlgorithm {
	case "", "https", "none":
	default:
		return fmt.Errorf("KAFKA_SSL_ENDPOINT_ALGORITHM=%q: want https or none", s.SSLEndpointAlgorithm)
	}
	switch s.AddressFamily {
	case "", "any", "v4", "v6":
	default:
		return fmt.Errorf("KAFKA_BROKER_ADDRESS_FAMILY=%q: want any, v4 or v6", s.AddressFamily)
	}
	return nil
}

// ConfigFromEnv reads the ingest settings from the reference environment
// variables (reference §9) and the DASHSTREAM_INGEST_* additions, through
// getenv (os.Getenv in production). Values are trimmed; enum values are
// case-insensitive. Unset or empty variables take their defaults, with the
// reference's "0 ⇒ default" mappings (DLQ_SEND_TIMEOUT_SECS). A set but
// unparsable or out-of-range value is an error naming the variable and the
// value (DECISIONS D1).
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	e := envReader{getenv: getenv}
	var c Config

	if v := e.str("KAFKA_BROKERS"); v != "" {
		for b := range strings.SplitSeq(v, ",") {
			if b = strings.TrimSpace(b); b != "" {
				c.Brokers = append(c.Brokers, b)
			}
		}
		if len(c.Brokers) == 0 {
			e.fail("KAFKA_BROKERS", v, "no broker address")
		}
	}
	c.Topic = e.str("KAFKA_TOPIC")
	c.GroupID = e.str("KAFKA_GROUP_ID")
	c.DLQTopic = e.str("KAFKA_DLQ_TOPIC")

	c.MaxPayloadBytes = e.intRange("WEBSOCKET_MAX_PAYLOAD_BYTES", wire.DefaultMaxPayload, 1, math.MaxInt32)

	switch v := strings.ToLower(e.str("KAFKA_ON_DECODE_ERROR")); v {
	case "", "skip":
		c.OnDecodeError = PolicySkip
	case "pause":
		c.OnDecodeError = PolicyPause
	default:
		e.fail("KAFKA_ON_DECODE_ERROR", e.str("KAFKA_ON_DECODE_ERROR"), "want skip or pause")
	}

	switch v := strings.ToLower(e.str("KAFKA_AUTO_OFFSET_RESET")); v {
	case "", "earliest", "smallest", "beginning":
		c.AutoOffsetReset = ResetEarliest
	case "latest", "largest", "end":
		c.AutoOffsetReset = ResetLatest
	default:
		e.fail("KAFKA_AUTO_OFFSET_RESET", e.str("KAFKA_AUTO_OFFSET_RESET"), "want earliest or latest")
	}

	c.OldDataUseTimestamp = e.boolean("KAFKA_OLD_DATA_USE_TIMESTAMP", false)
	c.OldDataGrace = e.seconds("KAFKA_OLD_DATA_GRACE_SECONDS", DefaultOldDataGrace, 0, false)
	c.LagCheckInterval = e.seconds("KAFKA_LAG_CHECK_INTERVAL_SECS", DefaultLagCheckInterval, 1, false)
	c.LagStalePartition = e.seconds("KAFKA_LAG_STALE_PARTITION_SECS", DefaultLagStalePartition, 0, false)

	c.DLQIncludeFullPayload = e.boolean("DLQ_INCLUDE_FULL_PAYLOAD", false)
	// 0 ⇒ default; clamped to 2^31−1 ms like the reference.
	c.DLQSendTimeout = e.seconds("DLQ_SEND_TIMEOUT_SECS", DefaultDLQSendTimeout, 0, true)
	if c.DLQSendTimeout > math.MaxInt32*time.Millisecond {
		c.DLQSendTimeout = math.MaxInt32 * time.Millisecond
	}
	c.MaxConcurrentDLQSends = e.intRange("MAX_CONCURRENT_DLQ_SENDS", DefaultMaxConcurrentDLQSends, 0, 1<<20)
	if c.MaxConcurrentDLQSends == 0 {
		c.MaxConcurrentDLQSends = -1 // reference: 0 ⇒ every DLQ record is dropped
	}

	c.BatchMaxRecords = e.intRange("DASHSTREAM_INGEST_BATCH_RECORDS", DefaultBatchMaxRecords, 1, 1<<24)
	c.BatchMaxBytes = e.size("DASHSTREAM_INGEST_BATCH_BYTES", DefaultBatchMaxBytes, 1<<10, 1<<30)
	c.CommitGroupOffsets = e.boolean("DASHSTREAM_KAFKA_COMMIT_OFFSETS", false)
	c.GroupCommitInterval = DefaultGroupCommitInterval

	s := &c.Security
	if v := e.str("KAFKA_SECURITY_PROTOCOL"); v != "" {
		s.Protocol = strings.ToLower(v)
		switch s.Protocol {
		case ProtocolPlaintext, ProtocolSSL, ProtocolSASLPlaintext, ProtocolSASLSSL:
		default:
			e.fail("KAFKA_SECURITY_PROTOCOL", v, "want plaintext, ssl, sasl_plaintext or sasl_ssl")
		}
	}
	s.SASLMechanism = strings.ToUpper(e.str("KAFKA_SASL_MECHANISM"))
	s.SASLUsername = e.str("KAFKA_SASL_USERNAME")
	s.SASLPassword = getenv("KAFKA_SASL_PASSWORD") // not trimmed: passwords may hold spaces
	s.SSLCALocation = e.str("KAFKA_SSL_CA_LOCATION")
	s.SSLCertificateLocation = e.str("KAFKA_SSL_CERTIFICATE_LOCATION")
	s.SSLKeyLocation = e.str("KAFKA_SSL_KEY_LOCATION")
	s.SSLKeyPassword = getenv("KAFKA_SSL_KEY_PASSWORD")
	s.SSLEndpointAlgorithm = strings.ToLower(e.str("KAFKA_SSL_ENDPOINT_ALGORITHM"))
	s.AddressFamily = strings.ToLower(e.str("KAFKA_BROKER_ADDRESS_FAMILY"))

	if e.err != nil {
		return Config{}, e.err
	}
	c = c.WithDefaults()
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// envReader parses environment values, keeping the first error.
type envReader struct {
	getenv func(string) string
	err    error
}

func (e *envReader) str(name string) string { return strings.TrimSpace(e.getenv(name)) }

func (e *envReader) fail(name, value, why string) {
	if e.err == nil {
		e.err = fmt.Errorf("%s=%q: %s", name, value, why)
	}
}

// intRange parses an integer in [lo, hi]; unset gives def.
func (e *envReader) intRange(name string, def, lo, hi int) int {
	v := e.str(name)
	if v == "" {
		return def
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		e.fail(name, v, "not an integer")
		return def
	}
	if n < int64(lo) || n > int64(hi) {
		e.fail(name, v, fmt.Sprintf("out of range [%d, %d]", lo, hi))
		return def
	}
	return int(n)
}

// seconds parses a whole number of seconds ≥ lo; unset gives def, and so
// does 0 when zeroIsDefault.
func (e *envReader) seconds(name string, def time.Duration, lo int, zeroIsDefault bool) time.Duration {
	v := e.str(name)
	if v == "" {
		return def
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		e.fail(name, v, "not a whole number of seconds")
		return def
	}
	if n == 0 && zeroIsDefault {
		return def
	}
	const maxSecs = int64(math.MaxInt64 / int64(time.Second))
	if n < int64(lo) || n > maxSecs {
		e.fail(name, v, fmt.Sprintf("out of range (minimum %d)", lo))
		return def
	}
	return time.Duration(n) * time.Second
}

// boolean parses true/1/yes/on and false/0/no/off (case-insensitive).
func (e *envReader) boolean(name string, def bool) bool {
	v := e.str(name)
	switch strings.ToLower(v) {
	case "":
		return def
	case "true", "1", "yes", "on":
		return true
	case "false", "0", "no", "off":
		return false
	}
	e.fail(name, v, "want true or false")
	return def
}

// size parses a byte count with an optional KiB/MiB/GiB (or KB/MB/GB,
// decimal) suffix, in [lo, hi].
func (e *envReader) size(name string, def, lo, hi int) int {
	v := e.str(name)
	if v == "" {
		return def
	}
	n, err := ParseSize(v)
	if err != nil {
		e.fail(name, v, err.Error())
		return def
	}
	if n < int64(lo) || n > int64(hi) {
		e.fail(name, v, fmt.Sprintf("out of range [%d, %d] bytes", lo, hi))
		return def
	}
	return int(n)
}

// ParseSize parses a byte count such as "4096", "8MiB", "1GiB" or "10MB".
func ParseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   int64
	}{
		{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1 << 40},
		{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"tb", 1e12},
		{"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30}, {"b", 1},
	}
	lower := strings.ToLower(s)
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(lower, u.suffix) {
			lower = strings.TrimSpace(strings.TrimSuffix(lower, u.suffix))
			mult = u.mult
			break
		}
	}
	n, err := strconv.ParseInt(lower, 10, 64)
	if err != nil || n < 0 {
		return 0, errors.New("not a byte size (e.g. 4096, 8MiB, 1GiB)")
	}
	if n > math.MaxInt64/mult {
		return 0, errors.New("byte size overflows")
	}
	return n * mult, nil
}
