package main

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"log/slog"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dashstream/dashstream/hub"
	"github.com/dashstream/dashstream/ingest"
	"github.com/dashstream/dashstream/store"
)

// cfgTestEnv returns a hermetic getenv over kv pairs ("NAME", "value", …),
// with HOME=/home/test unless kv sets it.
func cfgTestEnv(kv ...string) func(string) string {
	m := map[string]string{"HOME": "/home/test"}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

// cfgTestLoad loads a config, failing the test on error.
func cfgTestLoad(t *testing.T, mode string, args []string, getenv func(string) string) *config {
	t.Helper()
	c, err := loadConfigTo(mode, args, getenv, io.Discard)
	if err != nil {
		t.Fatalf("loadConfig(%s, %q): %v", mode, args, err)
	}
	return c
}

func TestConfigDefaults(t *testing.T) {
	for _, tc := range []struct {
		mode             string
		age              time.Duration
		retBytes, dbSize int64
		tail             int
	}{
		{modeServe, 168 * time.Hour, 1 << 30, 2 << 30, 1000},
		{modeDemo, 24 * time.Hour, 256 << 20, 512 << 20, 20000},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			c := cfgTestLoad(t, tc.mode, nil, cfgTestEnv())
			dataDir := filepath.Join("/home/test", ".cache", "dashstream")
			wantStore := storeConfig{Kind: "bolt", DataDir: dataDir, Fsync: true, Retention: store.Retention{
				MaxAge: tc.age, MaxBytes: tc.retBytes, MaxFileBytes: tc.dbSize}}
			if c.Mode != tc.mode {
				t.Errorf("Mode = %q", c.Mode)
			}
			if c.Store != wantStore {
				t.Errorf("Store = %+v, want %+v", c.Store, wantStore)
			}
			wantHub := hub.DefaultConfig()
			wantHub.TailRecords = tc.tail // the reference's 1000 for serve; the demo's bursts need more
			if !cfgTestHubEqual(c.Hub, wantHub) {
				t.Errorf("Hub = %+v, want %+v", c.Hub, wantHub)
			}
			if c.Hub.ReplayMaxTotal != 0 {
				t.Errorf("ReplayMaxTotal = %d, want 0 (no cap, D4)", c.Hub.ReplayMaxTotal)
			}
			if c.HTTPHost != "127.0.0.1" || !slices.Equal(c.HTTPPorts, []int{3002, 3003, 3004, 3005}) {
				t.Errorf("HTTP = %s %v", c.HTTPHost, c.HTTPPorts)
			}
			if want := filepath.Join(dataDir, "expected_schemas.json"); c.ExpectedSchemasPath != want {
				t.Errorf("ExpectedSchemasPath = %q, want %q", c.ExpectedSchemasPath, want)
			}
			if c.LogLevel != slog.LevelInfo || c.LogFormat != "text" {
				t.Errorf("log = %v %q", c.LogLevel, c.LogFormat)
			}
			if c.GitSHA != "unknown" || c.BuildDate != "unknown" {
				t.Errorf("build = %q %q", c.GitSHA, c.BuildDate)
			}
			if len(c.Ignored) != 0 {
				t.Errorf("Ignored = %q", c.Ignored)
			}
			if c.Ingest.Topic != ingest.DefaultTopic || c.Ingest.GroupID != ingest.DefaultGroupID ||
				c.Ingest.DLQTopic != ingest.DefaultTopic+"-dlq" {
				t.Errorf("Ingest = %+v", c.Ingest)
			}
			if tc.mode == modeDemo {
				if c.KafkaAddr != "127.0.0.1:9092" || c.RunsPerSecond != 2 || c.Shape != "mixed" || c.MinMessages != 0 {
					t.Errorf("demo = %q %v %q %d", c.KafkaAddr, c.RunsPerSecond, c.Shape, c.MinMessages)
				}
				if !slices.Equal(c.Ingest.Brokers, []string{"127.0.0.1:9092"}) {
					t.Errorf("demo Brokers = %v, want the --kafka-addr", c.Ingest.Brokers)
				}
			} else {
				if !slices.Equal(c.Ingest.Brokers, []string{ingest.DefaultBrokers}) {
					t.Errorf("Brokers = %v", c.Ingest.Brokers)
				}
				if c.KafkaAddr != "" || c.RunsPerSecond != 0 || c.Shape != "" {
					t.Errorf("serve has demo settings: %q %v %q", c.KafkaAddr, c.RunsPerSecond, c.Shape)
				}
			}
		})
	}
}

// cfgTestHubEqual compares hub configs (they hold slices).
func cfgTestHubEqual(a, b hub.Config) bool { return reflect.DeepEqual(a, b) }

func TestConfigEveryVariable(t *testing.T) {
	env := cfgTestEnv(
		"DASHSTREAM_DATA_DIR", "/srv/ds/",
		"DASHSTREAM_STORE", "MEMORY",
		"DASHSTREAM_RETENTION_RECORDS", "5000",
		"DASHSTREAM_RETENTION_AGE", "90m",
		"DASHSTREAM_RETENTION_BYTES", "100MB",
		"DASHSTREAM_MAX_DB_BYTES", "1GiB",
		"DASHSTREAM_FSYNC", "0",
		"DASHSTREAM_MAX_CONNECTIONS", "50",
		"DASHSTREAM_AUTH_TOKEN", "read-secret",
		"DASHSTREAM_ADMIN_TOKEN", "admin-secret",
		"DASHSTREAM_ALLOWED_ORIGINS", "https://A.example:443, http://b.example:8080/,chrome-extension://abc",
		"DASHSTREAM_LOG_FORMAT", "JSON",
		"DASHSTREAM_INGEST_BATCH_RECORDS", "100",
		"DASHSTREAM_INGEST_BATCH_BYTES", "1MiB",
		"DASHSTREAM_KAFKA_COMMIT_OFFSETS", "yes",
		"KAFKA_BROKERS", "k1:9092, k2:9092",
		"KAFKA_TOPIC", "t",
		"KAFKA_GROUP_ID", "g",
		"KAFKA_DLQ_TOPIC", "d",
		"KAFKA_CLUSTER_ID", "c1",
		"KAFKA_AUTO_OFFSET_RESET", "LATEST",
		"KAFKA_ON_DECODE_ERROR", "Pause",
		"KAFKA_SECURITY_PROTOCOL", "SASL_SSL",
		"KAFKA_SASL_MECHANISM", "scram-sha-512",
		"KAFKA_SASL_USERNAME", "u",
		"KAFKA_SASL_PASSWORD", "p",
		"DLQ_SEND_TIMEOUT_SECS", "0",
		"WEBSOCKET_MAX_PAYLOAD_BYTES", "2048",
		"WEBSOCKET_HOST", "0.0.0.0",
		"WEBSOCKET_PORT", "8080",
		"WEBSOCKET_BUFFER_SIZE", "64",
		"WEBSOCKET_SEND_TIMEOUT_SECS", "7",
		"REPLAY_TIMEOUT_SECS", "11",
		"REPLAY_MAX_TOTAL", "500",
		"SLOW_CLIENT_DISCONNECT_THRESHOLD", "0",
		"SLOW_CLIENT_LAG_WINDOW_SECS", "0",
		"WEBSOCKET_MAX_CONNECTIONS_PER_IP", "0",
		"WEBSOCKET_TRUSTED_PROXY_IPS", " 10.0.0.1, ,::ffff:10.0.0.2,fd00::1 ",
		"EXPECTED_SCHEMAS_PATH", "/etc/ds/schemas.json",
		"RUST_LOG", "warn,websocket_server=debug",
		"GIT_COMMIT_SHA", "abc123",
		"BUILD_DATE", "2024-01-02",
	)
	c := cfgTestLoad(t, modeServe, nil, env)

	wantStore := storeConfig{Kind: "memory", DataDir: "/srv/ds", Fsync: false, Retention: store.Retention{
		MaxRecordsPerPartition: 5000, MaxAge: 90 * time.Minute, MaxBytes: 100e6, MaxFileBytes: 1 << 30}}
	if c.Store != wantStore {
		t.Errorf("Store = %+v, want %+v", c.Store, wantStore)
	}
	wantHub := hub.DefaultConfig()
	wantHub.TailRecords = 64
	wantHub.SendTimeout = 7 * time.Second
	wantHub.ReplayTimeout = 11 * time.Second
	wantHub.ReplayMaxTotal = 500
	wantHub.SlowThreshold = 0
	wantHub.SlowWindow = 0
	wantHub.MaxConnsPerIP = -1
	wantHub.MaxConns = 50
	wantHub.TrustedProxies = []string{"10.0.0.1", "10.0.0.2", "fd00::1"}
	wantHub.AllowedOrigins = []string{"https://a.example", "http://b.example:8080", "chrome-extension://abc"}
	wantHub.AuthToken = "read-secret"
	wantHub.AdminToken = "admin-secret"
	if !cfgTestHubEqual(c.Hub, wantHub) {
		t.Errorf("Hub =\n%+v, want\n%+v", c.Hub, wantHub)
	}
	if c.HTTPHost != "0.0.0.0" || !slices.Equal(c.HTTPPorts, []int{8080}) {
		t.Errorf("HTTP = %s %v", c.HTTPHost, c.HTTPPorts)
	}
	if c.ExpectedSchemasPath != "/etc/ds/schemas.json" {
		t.Errorf("ExpectedSchemasPath = %q", c.ExpectedSchemasPath)
	}
	if c.LogLevel != slog.LevelDebug || c.LogFormat != "json" {
		t.Errorf("log = %v %q", c.LogLevel, c.LogFormat)
	}
	if c.GitSHA != "abc123" || c.BuildDate != "2024-01-02" || c.KafkaClusterID != "c1" {
		t.Errorf("build = %q %q cluster %q", c.GitSHA, c.BuildDate, c.KafkaClusterID)
	}
	ic := c.Ingest
	if !slices.Equal(ic.Brokers, []string{"k1:9092", "k2:9092"}) || ic.Topic != "t" || ic.GroupID != "g" || ic.DLQTopic != "d" ||
		ic.AutoOffsetReset != ingest.ResetLatest || ic.OnDecodeError != ingest.PolicyPause ||
		ic.Security.Protocol != ingest.ProtocolSASLSSL || ic.Security.SASLMechanism != ingest.MechanismScramSHA512 ||
		ic.DLQSendTimeout != ingest.DefaultDLQSendTimeout || ic.MaxPayloadBytes != 2048 ||
		ic.BatchMaxRecords != 100 || ic.BatchMaxBytes != 1<<20 || !ic.CommitGroupOffsets {
		t.Errorf("Ingest = %+v", ic)
	}
}

func TestConfigFlagsOverrideEnv(t *testing.T) {
	env := cfgTestEnv(
		"DASHSTREAM_DATA_DIR", "/env/dir",
		"DASHSTREAM_STORE", "memory",
		"DASHSTREAM_RETENTION_RECORDS", "1",
		"DASHSTREAM_RETENTION_AGE", "1h",
		"DASHSTREAM_RETENTION_BYTES", "1MiB",
		"DASHSTREAM_MAX_DB_BYTES", "10MiB",
		"DASHSTREAM_FSYNC", "false",
		"DASHSTREAM_MAX_CONNECTIONS", "1",
		"DASHSTREAM_AUTH_TOKEN", "env-token",
		"DASHSTREAM_ADMIN_TOKEN", "env-admin",
		"DASHSTREAM_ALLOWED_ORIGINS", "https://env.example",
		"DASHSTREAM_LOG_FORMAT", "json",
		"DASHSTREAM_INGEST_BATCH_RECORDS", "1",
		"DASHSTREAM_KAFKA_COMMIT_OFFSETS", "true",
		"DASHSTREAM_RETENTION_BYTES", "not-a-size", // a flag replaces a bad value
	)
	args := []string{
		"--data-dir", "/flag/dir", "--store=bolt", "--retention-records=2", "--retention-age", "2h",
		"--retention-bytes", "2MiB", "--max-db-bytes", "20MiB", "--fsync", "--max-connections=2",
		"--auth-token=flag-token", "--admin-token", "flag-admin", "--allowed-origins", "https://flag.example",
		"--log-format", "text", "--ingest-batch-records", "2", "--kafka-commit-offsets=false",
	}
	c := cfgTestLoad(t, modeServe, args, env)
	want := storeConfig{Kind: "bolt", DataDir: "/flag/dir", Fsync: true, Retention: store.Retention{
		MaxRecordsPerPartition: 2, MaxAge: 2 * time.Hour, MaxBytes: 2 << 20, MaxFileBytes: 20 << 20}}
	if c.Store != want {
		t.Errorf("Store = %+v, want %+v", c.Store, want)
	}
	if c.Hub.MaxConns != 2 || c.Hub.AuthToken != "flag-token" || c.Hub.AdminToken != "flag-admin" ||
		!slices.Equal(c.Hub.AllowedOrigins, []string{"https://flag.example"}) {
		t.Errorf("Hub = %+v", c.Hub)
	}
	if c.LogFormat != "text" || c.Ingest.BatchMaxRecords != 2 || c.Ingest.CommitGroupOffsets {
		t.Errorf("LogFormat %q, batch %d, commit %v", c.LogFormat, c.Ingest.BatchMaxRecords, c.Ingest.CommitGroupOffsets)
	}
	if c.ExpectedSchemasPath != "/flag/dir/expected_schemas.json" {
		t.Errorf("ExpectedSchemasPath = %q", c.ExpectedSchemasPath)
	}

	// An empty flag clears the variable (its default applies).
	c = cfgTestLoad(t, modeServe, []string{"--auth-token=", "--store="}, cfgTestEnv("DASHSTREAM_AUTH_TOKEN", "x", "DASHSTREAM_STORE", "memory"))
	if c.Hub.AuthToken != "" || c.Store.Kind != "bolt" {
		t.Errorf("empty flags: token %q, store %q", c.Hub.AuthToken, c.Store.Kind)
	}
}

func TestConfigDemoFlags(t *testing.T) {
	env := cfgTestEnv("WEBSOCKET_HOST", "10.1.1.1", "WEBSOCKET_PORT", "9999")
	c := cfgTestLoad(t, modeDemo, []string{"--addr", "[::1]:0", "--kafka-addr", "127.0.0.1:19092",
		"--runs-per-second", "0.5", "--shape", "React", "--min-messages", "40", "--store", "memory"}, env)
	if c.HTTPHost != "::1" || !slices.Equal(c.HTTPPorts, []int{0}) {
		t.Errorf("--addr: %q %v", c.HTTPHost, c.HTTPPorts)
	}
	if c.KafkaAddr != "127.0.0.1:19092" || !slices.Equal(c.Ingest.Brokers, []string{"127.0.0.1:19092"}) {
		t.Errorf("--kafka-addr: %q %v", c.KafkaAddr, c.Ingest.Brokers)
	}
	if c.RunsPerSecond != 0.5 || c.Shape != "react" || c.MinMessages != 40 || c.Store.Kind != "memory" {
		t.Errorf("demo = %v %q %d %q", c.RunsPerSecond, c.Shape, c.MinMessages, c.Store.Kind)
	}

	// Without --addr, demo binds like serve.
	c = cfgTestLoad(t, modeDemo, nil, env)
	if c.HTTPHost != "10.1.1.1" || !slices.Equal(c.HTTPPorts, []int{9999}) {
		t.Errorf("demo without --addr: %q %v", c.HTTPHost, c.HTTPPorts)
	}

	// serve has no demo flags.
	if _, err := loadConfigTo(modeServe, []string{"--shape", "react"}, cfgTestEnv(), io.Discard); err == nil {
		t.Error("serve accepted --shape")
	}
}

func TestConfigInvalid(t *testing.T) {
	for _, tc := range []struct {
		mode string
		args []string
		env  []string
		want string // substring of the error: the name and the quoted value
	}{
		{env: []string{"DASHSTREAM_RETENTION_AGE", "3 days"}, want: `DASHSTREAM_RETENTION_AGE="3 days": not a Go duration (e.g. 72h)`},
		{env: []string{"DASHSTREAM_RETENTION_AGE", "-1h"}, want: `DASHSTREAM_RETENTION_AGE="-1h"`},
		{env: []string{"DASHSTREAM_RETENTION_RECORDS", "-5"}, want: `DASHSTREAM_RETENTION_RECORDS="-5"`},
		{env: []string{"DASHSTREAM_RETENTION_RECORDS", "lots"}, want: `DASHSTREAM_RETENTION_RECORDS="lots": not an integer`},
		{env: []string{"DASHSTREAM_RETENTION_BYTES", "1 jigabyte"}, want: `DASHSTREAM_RETENTION_BYTES="1 jigabyte"`},
		{env: []string{"DASHSTREAM_MAX_DB_BYTES", "-1"}, want: `DASHSTREAM_MAX_DB_BYTES="-1"`},
		{env: []string{"DASHSTREAM_MAX_DB_BYTES", "1KiB"}, want: `DASHSTREAM_MAX_DB_BYTES="1KiB": below the minimum 256KiB`},
		{env: []string{"DASHSTREAM_STORE", "sqlite"}, want: `DASHSTREAM_STORE="sqlite": want bolt, memory or redis`},
		{env: []string{"DASHSTREAM_FSYNC", "maybe"}, want: `DASHSTREAM_FSYNC="maybe": want true or false`},
		{env: []string{"DASHSTREAM_MAX_CONNECTIONS", "0"}, want: `DASHSTREAM_MAX_CONNECTIONS="0": out of range`},
		{env: []string{"DASHSTREAM_LOG_FORMAT", "xml"}, want: `DASHSTREAM_LOG_FORMAT="xml": want text or json`},
		{env: []string{"DASHSTREAM_ALLOWED_ORIGINS", "https://ok.example,example.com"}, want: `DASHSTREAM_ALLOWED_ORIGINS="https://ok.example,example.com": "example.com"`},
		{env: []string{"DASHSTREAM_ALLOWED_ORIGINS", "https://x.example/path"}, want: `DASHSTREAM_ALLOWED_ORIGINS="https://x.example/path"`},
		{env: []string{"DASHSTREAM_ALLOWED_ORIGINS", "https://x.example:abc"}, want: `DASHSTREAM_ALLOWED_ORIGINS="https://x.example:abc"`},
		{env: []string{"DASHSTREAM_AUTH_TOKEN", "two words"}, want: `DASHSTREAM_AUTH_TOKEN: contains a space`},
		{env: []string{"DASHSTREAM_INGEST_BATCH_RECORDS", "0"}, want: `DASHSTREAM_INGEST_BATCH_RECORDS="0"`},
		{env: []string{"WEBSOCKET_PORT", "http"}, want: `WEBSOCKET_PORT="http": not a port number`},
		{env: []string{"WEBSOCKET_PORT", "70000"}, want: `WEBSOCKET_PORT="70000"`},
		{env: []string{"WEBSOCKET_PORT", "-1"}, want: `WEBSOCKET_PORT="-1"`},
		{env: []string{"WEBSOCKET_HOST", "my host"}, want: `WEBSOCKET_HOST="my host"`},
		{env: []string{"WEBSOCKET_BUFFER_SIZE", "-1"}, want: `WEBSOCKET_BUFFER_SIZE="-1": out of range`},
		{env: []string{"WEBSOCKET_SEND_TIMEOUT_SECS", "5s"}, want: `WEBSOCKET_SEND_TIMEOUT_SECS="5s": not a whole number of seconds`},
		{env: []string{"REPLAY_TIMEOUT_SECS", "-3"}, want: `REPLAY_TIMEOUT_SECS="-3"`},
		{env: []string{"REPLAY_MAX_TOTAL", "-1"}, want: `REPLAY_MAX_TOTAL="-1"`},
		{env: []string{"SLOW_CLIENT_DISCONNECT_THRESHOLD", "many"}, want: `SLOW_CLIENT_DISCONNECT_THRESHOLD="many"`},
		{env: []string{"SLOW_CLIENT_LAG_WINDOW_SECS", "1.5"}, want: `SLOW_CLIENT_LAG_WINDOW_SECS="1.5"`},
		{env: []string{"WEBSOCKET_MAX_CONNECTIONS_PER_IP", "ten"}, want: `WEBSOCKET_MAX_CONNECTIONS_PER_IP="ten"`},
		{env: []string{"WEBSOCKET_TRUSTED_PROXY_IPS", "10.0.0.1,10.0.0.0/8"}, want: `WEBSOCKET_TRUSTED_PROXY_IPS="10.0.0.1,10.0.0.0/8": "10.0.0.0/8" is not an IP address`},
		{env: []string{"KAFKA_SASL_MECHANISM", "GSSAPI"}, want: `KAFKA_SASL_MECHANISM=GSSAPI: Kerberos is not supported`},
		{env: []string{"KAFKA_ON_DECODE_ERROR", "explode"}, want: `KAFKA_ON_DECODE_ERROR="explode"`},
		{env: []string{"WEBSOCKET_MAX_PAYLOAD_BYTES", "0"}, want: `WEBSOCKET_MAX_PAYLOAD_BYTES="0"`},
		{env: []string{"RUST_LOG", "info,foo=loud"}, want: `RUST_LOG="info,foo=loud": "loud"`},
		{env: []string{"DASHSTREAM_STORE", "redis", "REDIS_URL", "http://cache:6379"}, want: `REDIS_URL="http://cache:6379"`},
		{args: []string{"--retention-age", "forever"}, want: `--retention-age="forever": not a Go duration`},
		{args: []string{"--fsync=perhaps"}, want: `--fsync="perhaps": want true or false`},
		{args: []string{"--ingest-batch-bytes", "1"}, want: `(given as --ingest-batch-bytes)`},
		{mode: modeDemo, args: []string{"--addr", "localhost"}, want: `--addr="localhost": want HOST:PORT`},
		{mode: modeDemo, args: []string{"--kafka-addr", "127.0.0.1:x"}, want: `--kafka-addr="127.0.0.1:x"`},
		{mode: modeDemo, args: []string{"--runs-per-second", "-1"}, want: `--runs-per-second="-1": out of range`},
		{mode: modeDemo, args: []string{"--shape", "star"}, want: `--shape="star": want react, pipeline, router, large or mixed`},
		{mode: modeDemo, args: []string{"--min-messages", "-2"}, want: `--min-messages="-2"`},
		{args: []string{"extra"}, want: `unexpected argument "extra"`},
	} {
		mode := tc.mode
		if mode == "" {
			mode = modeServe
		}
		t.Run(tc.want, func(t *testing.T) {
			_, err := loadConfigTo(mode, tc.args, cfgTestEnv(tc.env...), io.Discard)
			if err == nil {
				t.Fatalf("no error for env %q args %q", tc.env, tc.args)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

func TestConfigErrorsReportedTogether(t *testing.T) {
	_, err := loadConfigTo(modeServe, []string{"--max-connections=-1"}, cfgTestEnv(
		"DASHSTREAM_RETENTION_AGE", "3 days",
		"WEBSOCKET_PORT", "abc",
		"DASHSTREAM_FSYNC", "maybe",
		"KAFKA_SASL_MECHANISM", "GSSAPI",
	), io.Discard)
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"DASHSTREAM_RETENTION_AGE", "WEBSOCKET_PORT", "DASHSTREAM_FSYNC", "KAFKA_SASL_MECHANISM", "--max-connections"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %s:\n%v", want, err)
		}
	}
	if n := len(err.(interface{ Unwrap() []error }).Unwrap()); n != 5 {
		t.Errorf("%d joined errors, want 5:\n%v", n, err)
	}

	// An unparsable cap is reported once, not compared with retention.
	_, err = loadConfigTo(modeServe, nil, cfgTestEnv("DASHSTREAM_MAX_DB_BYTES", "big", "DASHSTREAM_RETENTION_BYTES", "3GiB"), io.Discard)
	if err == nil || strings.Count(err.Error(), "\n") != 0 || !strings.Contains(err.Error(), `DASHSTREAM_MAX_DB_BYTES="big"`) {
		t.Errorf("bad cap: %v, want one error naming DASHSTREAM_MAX_DB_BYTES", err)
	}
	// "--fsync false" is a bool flag and a stray argument.
	_, err = loadConfigTo(modeServe, []string{"--fsync", "false"}, cfgTestEnv(), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--flag=false") {
		t.Errorf("--fsync false: %v, want a hint at --flag=false", err)
	}
}

func TestConfigRetentionCap(t *testing.T) {
	for _, tc := range []struct {
		mode    string
		env     []string
		wantErr string
	}{
		// serve cap 2GiB: 0.8 × 2GiB = 1638.4MiB.
		{modeServe, []string{"DASHSTREAM_RETENTION_BYTES", "1600MiB"}, ""},
		{modeServe, []string{"DASHSTREAM_RETENTION_BYTES", "1700MiB"}, `DASHSTREAM_RETENTION_BYTES="1700MiB": above 0.8 x DASHSTREAM_MAX_DB_BYTES="2GiB"`},
		{modeServe, []string{"DASHSTREAM_MAX_DB_BYTES", "1GiB"}, `DASHSTREAM_RETENTION_BYTES="1GiB": above 0.8 x DASHSTREAM_MAX_DB_BYTES="1GiB"`},
		{modeServe, []string{"DASHSTREAM_RETENTION_BYTES", "8MiB", "DASHSTREAM_MAX_DB_BYTES", "10MiB"}, ""},
		{modeServe, []string{"DASHSTREAM_RETENTION_BYTES", "9MiB", "DASHSTREAM_MAX_DB_BYTES", "10MiB"}, "above 0.8 x"},
		// demo cap 512MiB.
		{modeDemo, []string{"DASHSTREAM_RETENTION_BYTES", "500MiB"}, `DASHSTREAM_RETENTION_BYTES="500MiB": above 0.8 x DASHSTREAM_MAX_DB_BYTES="512MiB"`},
		// No file cap, or no file: nothing to compare with.
		{modeServe, []string{"DASHSTREAM_RETENTION_BYTES", "100GiB", "DASHSTREAM_MAX_DB_BYTES", "0"}, ""},
		{modeServe, []string{"DASHSTREAM_RETENTION_BYTES", "4GiB", "DASHSTREAM_STORE", "memory"}, ""},
	} {
		t.Run(strings.Join(tc.env, "="), func(t *testing.T) {
			_, err := loadConfigTo(tc.mode, nil, cfgTestEnv(tc.env...), io.Discard)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
	_, err := loadConfigTo(modeServe, []string{"--retention-bytes=3GiB"}, cfgTestEnv(), io.Discard)
	if err == nil || !strings.Contains(err.Error(), `--retention-bytes="3GiB": above 0.8 x DASHSTREAM_MAX_DB_BYTES="2GiB"`) {
		t.Errorf("flag retention above cap: %v", err)
	}
}

func TestConfigPorts(t *testing.T) {
	for _, tc := range []struct {
		port  string
		want  []int
		isErr bool
	}{
		{"", []int{3002, 3003, 3004, 3005}, false},
		{"3002", []int{3002}, false},
		{" 8080 ", []int{8080}, false},
		{"0", []int{0}, false},
		{"65535", []int{65535}, false},
		{"65536", nil, true},
		{"80a", nil, true},
		{"3002,3003", nil, true},
	} {
		c, err := loadConfigTo(modeServe, nil, cfgTestEnv("WEBSOCKET_PORT", tc.port), io.Discard)
		if tc.isErr {
			if err == nil || !strings.Contains(err.Error(), "WEBSOCKET_PORT") {
				t.Errorf("WEBSOCKET_PORT=%q: error %v, want one naming WEBSOCKET_PORT", tc.port, err)
			}
			continue
		}
		if err != nil || !slices.Equal(c.HTTPPorts, tc.want) {
			t.Errorf("WEBSOCKET_PORT=%q: %v %v, want %v", tc.port, c.HTTPPorts, err, tc.want)
		}
	}
	c := cfgTestLoad(t, modeServe, nil, cfgTestEnv("WEBSOCKET_HOST", "[::]"))
	if c.HTTPHost != "::" {
		t.Errorf("WEBSOCKET_HOST=[::] gives %q", c.HTTPHost)
	}
}

func TestConfigRustLog(t *testing.T) {
	for _, tc := range []struct {
		spec string
		want slog.Level
	}{
		{"", slog.LevelInfo},
		{"error", slog.LevelError},
		{"WARN", slog.LevelWarn},
		{"info", slog.LevelInfo},
		{"debug", slog.LevelDebug},
		{"trace", slog.LevelDebug - 4},
		{"off", slog.LevelError},
		{"info,foo=debug", slog.LevelDebug},
		{"warn,rdkafka=error", slog.LevelWarn},
		{"websocket_server=debug", slog.LevelDebug},
		{"error,my_crate::module=trace", slog.LevelDebug - 4},
		{" , info , ", slog.LevelInfo},
		{"warn/some.*regex", slog.LevelWarn},
		{"websocket_server", slog.LevelDebug - 4}, // a bare target enables everything (env_logger)
	} {
		c := cfgTestLoad(t, modeServe, nil, cfgTestEnv("RUST_LOG", tc.spec))
		if c.LogLevel != tc.want {
			t.Errorf("RUST_LOG=%q: level %v, want %v", tc.spec, c.LogLevel, tc.want)
		}
	}
}

func TestConfigIgnored(t *testing.T) {
	c := cfgTestLoad(t, modeServe, nil, cfgTestEnv(
		"OTEL_EXPORTER_OTLP_ENDPOINT", "http://jaeger:4317",
		"OTEL_SERVICE_NAME", "ws",
		"REDIS_URL", "redis://:secret@cache:6379",
		"REDIS_MESSAGE_TTL_SECS", "60",
		"REPLAY_BUFFER_MEMORY_SIZE", "5000",
	))
	all := strings.Join(c.Ignored, "\n")
	for _, want := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_SERVICE_NAME", "REDIS_URL ignored", "REDIS_MESSAGE_TTL_SECS", "REPLAY_BUFFER_MEMORY_SIZE"} {
		if !strings.Contains(all, want) {
			t.Errorf("Ignored does not mention %s:\n%s", want, all)
		}
	}
	if strings.Contains(all, "secret") {
		t.Errorf("Ignored shows the Redis password:\n%s", all)
	}

	// With the Redis store, REDIS_URL is used, not ignored.
	c = cfgTestLoad(t, modeServe, []string{"--store", "REDIS"}, cfgTestEnv("REDIS_URL", "redis://:secret@cache:6379/2"))
	if c.Store.Kind != "redis" || c.Store.RedisURL != "redis://:secret@cache:6379/2" || len(c.Ignored) != 0 {
		t.Errorf("redis store: %+v, ignored %q", c.Store, c.Ignored)
	}
	if s := c.Summary(); strings.Contains(s, "secret") || !strings.Contains(s, "redis at redis://:xxxxx@cache:6379/2") {
		t.Errorf("Summary leaks or lacks the Redis URL:\n%s", s)
	}
	c = cfgTestLoad(t, modeServe, []string{"--store", "redis"}, cfgTestEnv())
	if c.Store.RedisURL != "redis://127.0.0.1:6379" {
		t.Errorf("default REDIS_URL = %q", c.Store.RedisURL)
	}

	// SASL settings without a sasl_* protocol would silently connect in
	// plaintext: they are named (never their values).
	c = cfgTestLoad(t, modeServe, nil, cfgTestEnv("KAFKA_SASL_USERNAME", "svc", "KAFKA_SASL_PASSWORD", "hunter2"))
	all = strings.Join(c.Ignored, "\n")
	if !strings.Contains(all, "KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD ignored: KAFKA_SECURITY_PROTOCOL is plaintext") || strings.Contains(all, "hunter2") {
		t.Errorf("SASL without sasl_*: Ignored = %q", c.Ignored)
	}

	// Demo ignores KAFKA_BROKERS, even an invalid one.
	c = cfgTestLoad(t, modeDemo, nil, cfgTestEnv("KAFKA_BROKERS", " , "))
	if len(c.Ignored) != 1 || !strings.Contains(c.Ignored[0], "KAFKA_BROKERS") {
		t.Errorf("demo Ignored = %q", c.Ignored)
	}
	if !slices.Equal(c.Ingest.Brokers, []string{"127.0.0.1:9092"}) {
		t.Errorf("demo Brokers = %v", c.Ingest.Brokers)
	}
	if _, err := loadConfigTo(modeServe, nil, cfgTestEnv("KAFKA_BROKERS", " , "), io.Discard); err == nil {
		t.Error("serve accepted KAFKA_BROKERS with no broker")
	}
}

func TestConfigHelp(t *testing.T) {
	for _, mode := range []string{modeServe, modeDemo} {
		var out bytes.Buffer
		_, err := loadConfigTo(mode, []string{"-h"}, cfgTestEnv(), &out)
		if !errors.Is(err, flag.ErrHelp) {
			t.Errorf("%s -h: %v, want flag.ErrHelp", mode, err)
		}
		usage := out.String()
		for _, f := range cfgFlags() {
			if f.demoOnly && mode != modeDemo {
				if strings.Contains(usage, "--"+f.name+" ") {
					t.Errorf("%s usage lists demo flag --%s", mode, f.name)
				}
				continue
			}
			if !strings.Contains(usage, "--"+f.name) || !strings.Contains(usage, f.env) {
				t.Errorf("%s usage lacks --%s / %s", mode, f.name, f.env)
			}
		}
		for _, want := range []string{"DASHSTREAM_DATA_DIR", "WEBSOCKET_PORT", "RUST_LOG", "REPLAY_MAX_TOTAL", "OTEL_*"} {
			if !strings.Contains(usage, want) {
				t.Errorf("%s usage lacks %s", mode, want)
			}
		}
		if mode == modeDemo && !strings.Contains(usage, "(default 24h)") {
			t.Errorf("demo usage lacks the demo retention default:\n%s", usage)
		}
		if mode == modeServe && !strings.Contains(usage, "(default 168h)") {
			t.Errorf("serve usage lacks the serve retention default:\n%s", usage)
		}
	}
	if _, err := loadConfigTo("bench", nil, cfgTestEnv(), io.Discard); err == nil {
		t.Error("unknown mode accepted")
	}
}

func TestConfigDataDir(t *testing.T) {
	for _, tc := range []struct {
		name  string
		env   []string
		args  []string
		want  string
		isErr bool
	}{
		{"xdg", []string{"XDG_CACHE_HOME", "/xdg"}, nil, "/xdg/dashstream", false},
		{"relative xdg ignored", []string{"XDG_CACHE_HOME", "rel"}, nil, "/home/test/.cache/dashstream", false},
		{"home", nil, nil, "/home/test/.cache/dashstream", false},
		{"variable", []string{"XDG_CACHE_HOME", "/xdg", "DASHSTREAM_DATA_DIR", "/data"}, nil, "/data", false},
		{"nothing", []string{"HOME", ""}, nil, "", true},
		{"nothing but memory and a schema path", []string{"HOME", "", "EXPECTED_SCHEMAS_PATH", "/s.json"}, []string{"--store=memory"}, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := loadConfigTo(modeServe, tc.args, cfgTestEnv(tc.env...), io.Discard)
			if tc.isErr {
				if err == nil || !strings.Contains(err.Error(), "DASHSTREAM_DATA_DIR") {
					t.Errorf("error %v, want one naming DASHSTREAM_DATA_DIR", err)
				}
				return
			}
			if err != nil || c.Store.DataDir != tc.want {
				t.Errorf("DataDir %q, %v; want %q", c.Store.DataDir, err, tc.want)
			}
		})
	}
}

func TestConfigSummary(t *testing.T) {
	c := cfgTestLoad(t, modeServe, nil, cfgTestEnv(
		"DASHSTREAM_AUTH_TOKEN", "tok-123", "DASHSTREAM_ADMIN_TOKEN", "adm-456",
		"DASHSTREAM_DATA_DIR", "/d", "KAFKA_BROKERS", "k:9092", "WEBSOCKET_HOST", "0.0.0.0"))
	s := c.Summary()
	for _, want := range []string{
		"store: bolt file /d/dashstream.db",
		"retention: records/partition no limit, age 168h, bytes 1GiB, file cap 2GiB",
		"fsync: on",
		"http: first free of 0.0.0.0:3002, 0.0.0.0:3003, 0.0.0.0:3004, 0.0.0.0:3005",
		"kafka: brokers k:9092, topic dashstream-quality, group websocket-server-v4",
		"auth: on, admin (cursor_reset): on",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("Summary lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "tok-123") || strings.Contains(s, "adm-456") || strings.Contains(s, "WARNING") {
		t.Errorf("Summary shows a token or a needless warning:\n%s", s)
	}

	c = cfgTestLoad(t, modeDemo, []string{"--fsync=false", "--runs-per-second=0"}, cfgTestEnv("WEBSOCKET_HOST", "0.0.0.0", "WEBSOCKET_PORT", "4000"))
	s = c.Summary()
	for _, want := range []string{"age 24h, bytes 256MiB, file cap 512MiB", "fsync: off", "http: 0.0.0.0:4000 (exactly)",
		"brokers embedded 127.0.0.1:9092", "demo producer: off", "auth: off", "WARNING"} {
		if !strings.Contains(s, want) {
			t.Errorf("demo Summary lacks %q:\n%s", want, s)
		}
	}
}

// TestConfigRedisRetention: with the Redis store, REDIS_MAX_SEQUENCES and
// REDIS_MESSAGE_TTL_SECS are read and checked at load, the count limit is
// REDIS_MAX_SEQUENCES unless DASHSTREAM_RETENTION_RECORDS is set, and the
// summary shows only the retention that applies.
func TestConfigRedisRetention(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		env     []string
		records int64
		ttl     time.Duration
		ignored string // a substring of the ignored messages; "" wants none
	}{
		{name: "defaults", records: 10000, ttl: time.Hour},
		{name: "reference vars", env: []string{"REDIS_MAX_SEQUENCES", "500", "REDIS_MESSAGE_TTL_SECS", "60"}, records: 500, ttl: time.Minute},
		{name: "ttl 0 is 3600", env: []string{"REDIS_MESSAGE_TTL_SECS", "0"}, records: 10000, ttl: time.Hour},
		{name: "retention records wins", env: []string{"DASHSTREAM_RETENTION_RECORDS", "42", "REDIS_MAX_SEQUENCES", "500"},
			records: 42, ttl: time.Hour, ignored: "REDIS_MAX_SEQUENCES ignored: DASHSTREAM_RETENTION_RECORDS=42"},
		{name: "retention records 0 is no count limit", args: []string{"--retention-records", "0"}, records: 0, ttl: time.Hour},
		{name: "age and bytes do not apply", env: []string{"DASHSTREAM_RETENTION_AGE", "1h", "DASHSTREAM_RETENTION_BYTES", "1MiB"},
			records: 10000, ttl: time.Hour, ignored: "DASHSTREAM_RETENTION_AGE ignored"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := cfgTestLoad(t, modeServe, append([]string{"--store", "redis"}, tc.args...), cfgTestEnv(tc.env...))
			want := store.Retention{MaxRecordsPerPartition: tc.records}
			if c.Store.Retention != want || c.Store.RedisTTL != tc.ttl {
				t.Errorf("Retention %+v, TTL %v; want %+v, %v", c.Store.Retention, c.Store.RedisTTL, want, tc.ttl)
			}
			all := strings.Join(c.Ignored, "\n")
			if (tc.ignored == "") != (all == "") || !strings.Contains(all, tc.ignored) {
				t.Errorf("Ignored = %q, want %q", all, tc.ignored)
			}
			s := c.Summary()
			limit := "no limit"
			if tc.records > 0 {
				limit = strconv.FormatInt(tc.records, 10)
			}
			if w := "retention: records/partition " + limit + ", key TTL " + formatDuration(tc.ttl); !strings.Contains(s, w) {
				t.Errorf("Summary lacks %q:\n%s", w, s)
			}
			if strings.Contains(s, "file cap") || strings.Contains(s, "fsync") {
				t.Errorf("Summary shows bolt-only settings for redis:\n%s", s)
			}
		})
	}

	for _, tc := range []struct{ env, value, want string }{
		{"REDIS_MESSAGE_TTL_SECS", "1h", `REDIS_MESSAGE_TTL_SECS="1h": not a whole number of seconds`},
		{"REDIS_MESSAGE_TTL_SECS", "-1", `REDIS_MESSAGE_TTL_SECS="-1": out of range`},
		{"REDIS_MAX_SEQUENCES", "many", `REDIS_MAX_SEQUENCES="many": not an integer`},
		{"REDIS_MAX_SEQUENCES", "-5", `REDIS_MAX_SEQUENCES="-5": out of range`},
		{"REDIS_MAX_SEQUENCES", "0", `REDIS_MAX_SEQUENCES="0": 0 would keep no record`},
	} {
		_, err := loadConfigTo(modeServe, []string{"--store=redis"}, cfgTestEnv(tc.env, tc.value), io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s=%s: error %v, want %q", tc.env, tc.value, err, tc.want)
		}
		// Without the Redis store they are ignored, not checked.
		c := cfgTestLoad(t, modeServe, nil, cfgTestEnv(tc.env, tc.value))
		if !strings.Contains(strings.Join(c.Ignored, "\n"), tc.env+" ignored") {
			t.Errorf("bolt store: %s=%s not reported ignored: %q", tc.env, tc.value, c.Ignored)
		}
	}
}
