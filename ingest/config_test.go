package ingest

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func envOf(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}

func TestConfigFromEnvDefaults(t *testing.T) {
	c, err := ConfigFromEnv(envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Brokers:               []string{"127.0.0.1:9092"},
		Topic:                 "dashstream-quality",
		GroupID:               "websocket-server-v4",
		DLQTopic:              "dashstream-quality-dlq",
		MaxPayloadBytes:       10485760,
		OnDecodeError:         PolicySkip,
		AutoOffsetReset:       ResetEarliest,
		OldDataGrace:          30 * time.Second,
		LagCheckInterval:      10 * time.Second,
		LagStalePartition:     60 * time.Second,
		DLQSendTimeout:        5 * time.Second,
		MaxConcurrentDLQSends: 100,
		BatchMaxRecords:       DefaultBatchMaxRecords,
		BatchMaxBytes:         DefaultBatchMaxBytes,
		GroupCommitInterval:   DefaultGroupCommitInterval,
		Security:              Security{Protocol: "plaintext", SSLEndpointAlgorithm: "https"},
	}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("defaults:\n got %+v\nwant %+v", c, want)
	}
}

func TestConfigFromEnv(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		check   func(t *testing.T, c Config)
		wantErr string // substring; "" = no error
	}{
		{name: "brokers split and trimmed", env: map[string]string{"KAFKA_BROKERS": " a:1 , b:2,,"},
			check: func(t *testing.T, c Config) { ingEq(t, c.Brokers, []string{"a:1", "b:2"}) }},
		{name: "brokers only commas", env: map[string]string{"KAFKA_BROKERS": ",,"}, wantErr: `KAFKA_BROKERS=",,"`},
		{name: "dlq topic follows topic", env: map[string]string{"KAFKA_TOPIC": "t1"},
			check: func(t *testing.T, c Config) { ingEq(t, c.DLQTopic, "t1-dlq") }},
		{name: "dlq topic explicit", env: map[string]string{"KAFKA_TOPIC": "t1", "KAFKA_DLQ_TOPIC": "dead"},
			check: func(t *testing.T, c Config) { ingEq(t, c.DLQTopic, "dead") }},
		{name: "policy pause case-insensitive", env: map[string]string{"KAFKA_ON_DECODE_ERROR": " PAUSE "},
			check: func(t *testing.T, c Config) { ingEq(t, c.OnDecodeError, PolicyPause) }},
		{name: "policy bogus", env: map[string]string{"KAFKA_ON_DECODE_ERROR": "halt"}, wantErr: `KAFKA_ON_DECODE_ERROR="halt"`},
		{name: "offset reset latest", env: map[string]string{"KAFKA_AUTO_OFFSET_RESET": "Latest"},
			check: func(t *testing.T, c Config) { ingEq(t, c.AutoOffsetReset, ResetLatest) }},
		{name: "offset reset alias smallest", env: map[string]string{"KAFKA_AUTO_OFFSET_RESET": "smallest"},
			check: func(t *testing.T, c Config) { ingEq(t, c.AutoOffsetReset, ResetEarliest) }},
		{name: "offset reset bogus", env: map[string]string{"KAFKA_AUTO_OFFSET_RESET": "none"}, wantErr: `KAFKA_AUTO_OFFSET_RESET="none"`},
		{name: "max payload", env: map[string]string{"WEBSOCKET_MAX_PAYLOAD_BYTES": "4096"},
			check: func(t *testing.T, c Config) { ingEq(t, c.MaxPayloadBytes, 4096) }},
		{name: "max payload zero", env: map[string]string{"WEBSOCKET_MAX_PAYLOAD_BYTES": "0"}, wantErr: `WEBSOCKET_MAX_PAYLOAD_BYTES="0"`},
		{name: "max payload garbage", env: map[string]string{"WEBSOCKET_MAX_PAYLOAD_BYTES": "10MB"}, wantErr: `WEBSOCKET_MAX_PAYLOAD_BYTES="10MB": not an integer`},
		{name: "dlq timeout zero is default", env: map[string]string{"DLQ_SEND_TIMEOUT_SECS": "0"},
			check: func(t *testing.T, c Config) { ingEq(t, c.DLQSendTimeout, 5*time.Second) }},
		{name: "dlq timeout clamped", env: map[string]string{"DLQ_SEND_TIMEOUT_SECS": "99999999"},
			check: func(t *testing.T, c Config) { ingEq(t, c.DLQSendTimeout, 2147483647*time.Millisecond) }},
		{name: "dlq timeout negative", env: map[string]string{"DLQ_SEND_TIMEOUT_SECS": "-1"}, wantErr: `DLQ_SEND_TIMEOUT_SECS="-1"`},
		{name: "dlq full payload true", env: map[string]string{"DLQ_INCLUDE_FULL_PAYLOAD": "TRUE"},
			check: func(t *testing.T, c Config) { ingEq(t, c.DLQIncludeFullPayload, true) }},
		{name: "dlq full payload 1", env: map[string]string{"DLQ_INCLUDE_FULL_PAYLOAD": "1"},
			check: func(t *testing.T, c Config) { ingEq(t, c.DLQIncludeFullPayload, true) }},
		{name: "dlq full payload bogus", env: map[string]string{"DLQ_INCLUDE_FULL_PAYLOAD": "maybe"}, wantErr: `DLQ_INCLUDE_FULL_PAYLOAD="maybe"`},
		{name: "dlq sends zero kept", env: map[string]string{"MAX_CONCURRENT_DLQ_SENDS": "0"},
			check: func(t *testing.T, c Config) { ingEq(t, c.MaxConcurrentDLQSends, -1) }},
		{name: "lag interval", env: map[string]string{"KAFKA_LAG_CHECK_INTERVAL_SECS": "3", "KAFKA_LAG_STALE_PARTITION_SECS": "0"},
			check: func(t *testing.T, c Config) {
				ingEq(t, c.LagCheckInterval, 3*time.Second)
				ingEq(t, c.LagStalePartition, time.Duration(0))
			}},
		{name: "lag interval zero", env: map[string]string{"KAFKA_LAG_CHECK_INTERVAL_SECS": "0"}, wantErr: `KAFKA_LAG_CHECK_INTERVAL_SECS="0"`},
		{name: "old data timestamp", env: map[string]string{"KAFKA_OLD_DATA_USE_TIMESTAMP": "1", "KAFKA_OLD_DATA_GRACE_SECONDS": "0"},
			check: func(t *testing.T, c Config) {
				ingEq(t, c.OldDataUseTimestamp, true)
				ingEq(t, c.OldDataGrace, time.Duration(0))
			}},
		{name: "old data grace garbage", env: map[string]string{"KAFKA_OLD_DATA_GRACE_SECONDS": "30s"}, wantErr: `KAFKA_OLD_DATA_GRACE_SECONDS="30s"`},
		{name: "batch limits", env: map[string]string{"DASHSTREAM_INGEST_BATCH_RECORDS": "500", "DASHSTREAM_INGEST_BATCH_BYTES": "2MiB"},
			check: func(t *testing.T, c Config) {
				ingEq(t, c.BatchMaxRecords, 500)
				ingEq(t, c.BatchMaxBytes, 2<<20)
			}},
		{name: "batch bytes bogus", env: map[string]string{"DASHSTREAM_INGEST_BATCH_BYTES": "lots"}, wantErr: `DASHSTREAM_INGEST_BATCH_BYTES="lots"`},
		{name: "batch records zero", env: map[string]string{"DASHSTREAM_INGEST_BATCH_RECORDS": "0"}, wantErr: `DASHSTREAM_INGEST_BATCH_RECORDS="0"`},
		{name: "commit offsets", env: map[string]string{"DASHSTREAM_KAFKA_COMMIT_OFFSETS": "true"},
			check: func(t *testing.T, c Config) { ingEq(t, c.CommitGroupOffsets, true) }},
		{name: "sasl plain", env: map[string]string{"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "plain",
			"KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": " p w "},
			check: func(t *testing.T, c Config) {
				ingEq(t, c.Security.Protocol, ProtocolSASLSSL)
				ingEq(t, c.Security.SASLMechanism, MechanismPlain)
				ingEq(t, c.Security.SASLPassword, " p w ")
			}},
		{name: "protocol bogus", env: map[string]string{"KAFKA_SECURITY_PROTOCOL": "tls"}, wantErr: `KAFKA_SECURITY_PROTOCOL="tls"`},
		{name: "gssapi unsupported", env: map[string]string{"KAFKA_SECURITY_PROTOCOL": "sasl_plaintext", "KAFKA_SASL_MECHANISM": "GSSAPI"},
			wantErr: "KAFKA_SASL_MECHANISM=GSSAPI"},
		{name: "oauthbearer unsupported", env: map[string]string{"KAFKA_SASL_MECHANISM": "oauthbearer"}, wantErr: "KAFKA_SASL_MECHANISM=OAUTHBEARER"},
		{name: "mechanism bogus", env: map[string]string{"KAFKA_SASL_MECHANISM": "md5"}, wantErr: `KAFKA_SASL_MECHANISM="MD5"`},
		{name: "username without password", env: map[string]string{"KAFKA_SASL_USERNAME": "u"}, wantErr: "KAFKA_SASL_PASSWORD is not"},
		{name: "password without username", env: map[string]string{"KAFKA_SASL_PASSWORD": "p"}, wantErr: "KAFKA_SASL_USERNAME is not"},
		{name: "sasl without mechanism", env: map[string]string{"KAFKA_SECURITY_PROTOCOL": "sasl_plaintext", "KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": "p"},
			wantErr: "needs KAFKA_SASL_MECHANISM"},
		{name: "sasl without credentials", env: map[string]string{"KAFKA_SECURITY_PROTOCOL": "sasl_plaintext", "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512"},
			wantErr: "needs KAFKA_SASL_USERNAME"},
		{name: "cert without key", env: map[string]string{"KAFKA_SSL_CERTIFICATE_LOCATION": "/c.pem"}, wantErr: "KAFKA_SSL_KEY_LOCATION is not"},
		{name: "key without cert", env: map[string]string{"KAFKA_SSL_KEY_LOCATION": "/k.pem"}, wantErr: "KAFKA_SSL_CERTIFICATE_LOCATION is not"},
		{name: "endpoint algorithm none", env: map[string]string{"KAFKA_SSL_ENDPOINT_ALGORITHM": "NONE"},
			check: func(t *testing.T, c Config) { ingEq(t, c.Security.SSLEndpointAlgorithm, "none") }},
		{name: "endpoint algorithm bogus", env: map[string]string{"KAFKA_SSL_ENDPOINT_ALGORITHM": "ldaps"}, wantErr: `KAFKA_SSL_ENDPOINT_ALGORITHM="ldaps"`},
		{name: "address family", env: map[string]string{"KAFKA_BROKER_ADDRESS_FAMILY": "V6"},
			check: func(t *testing.T, c Config) { ingEq(t, c.Security.AddressFamily, "v6") }},
		{name: "address family bogus", env: map[string]string{"KAFKA_BROKER_ADDRESS_FAMILY": "ipx"}, wantErr: `KAFKA_BROKER_ADDRESS_FAMILY="ipx"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ConfigFromEnv(envOf(tc.env))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c)
		})
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"4096": 4096, "8MiB": 8 << 20, "1 GiB": 1 << 30, "10MB": 10e6, "2k": 2048, "7b": 7} {
		got, err := ParseSize(in)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "x", "-1", "1.5MiB", "99999999999TiB"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) succeeded", in)
		}
	}
}

func ingEq[T any](t *testing.T, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}
