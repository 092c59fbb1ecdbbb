package wire

import (
	"encoding/base64"
	"strings"
	"testing"
)

func TestNormalizeBrokers(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"", ""},
		{" , ,", ""},
		{"127.0.0.1:9092", "127.0.0.1:9092"},
		{" b:2 , a:1 ", "a:1,b:2"},
		{"b:2,,a:1,", "a:1,b:2"},
		{"b:2,a:1,b:2", "a:1,b:2,b:2"}, // no de-duplication
		{"kafka-2:9092,kafka-10:9092", "kafka-10:9092,kafka-2:9092"},
	}
	for _, tc := range tests {
		if got := NormalizeBrokers(tc.in); got != tc.want {
			t.Errorf("NormalizeBrokers(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestResumeNamespace(t *testing.T) {
	b64 := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	tests := []struct {
		name                           string
		cluster, topic, group, brokers string
		want                           string
	}{
		{
			name:    "reference vector",
			topic:   "dashstream-quality",
			group:   "websocket-server-v4",
			brokers: "127.0.0.1:9092",
			want:    "v1_dG9waWM9ZGFzaHN0cmVhbS1xdWFsaXR5O2dyb3VwPXdlYnNvY2tldC1zZXJ2ZXItdjQ7YnJva2Vycz0xMjcuMC4wLjE6OTA5Mg",
		},
		{
			name:    "brokers normalised",
			topic:   "t",
			group:   "g",
			brokers: " b:2, a:1,,a:1 ",
			want:    "v1_" + b64("topic=t;group=g;brokers=a:1,a:1,b:2"),
		},
		{
			name:    "cluster id",
			cluster: "abc123",
			topic:   "dashstream-quality",
			group:   "websocket-server-v4",
			brokers: "127.0.0.1:9092",
			want:    "v2_" + b64("cluster=abc123;topic=dashstream-quality;group=websocket-server-v4;brokers=127.0.0.1:9092"),
		},
		{
			name:    "demo embedded",
			topic:   "dashstream-quality",
			group:   "websocket-server-v4",
			brokers: "embedded",
			want:    "v1_" + b64("topic=dashstream-quality;group=websocket-server-v4;brokers=embedded"),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := ResumeNamespace(tc.cluster, tc.topic, tc.group, tc.brokers)
			if got != tc.want {
				t.Errorf("ResumeNamespace = %q, want %q", got, tc.want)
			}
			if !keySafe(got) {
				t.Errorf("ResumeNamespace = %q has characters outside [A-Za-z0-9_-]", got)
			}
		})
	}
	// Broker order and spacing must not change the namespace.
	if a, b := ResumeNamespace("", "t", "g", "a:1,b:2"), ResumeNamespace("", "t", "g", " b:2 ,a:1"); a != b {
		t.Errorf("namespace depends on broker order: %q vs %q", a, b)
	}
}

func TestEpoch(t *testing.T) {
	id := [16]byte{0x73, 0xac, 0xb1, 0x3b, 0x7c, 0x6d, 0x0c, 0x5d, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	tests := []struct {
		gen  uint64
		want string
	}{
		{0, "73acb13b7c6d0c5d-0"},
		{1, "73acb13b7c6d0c5d-1"},
		{18446744073709551615, "73acb13b7c6d0c5d-18446744073709551615"},
	}
	for _, tc := range tests {
		if got := EpochFor(id, tc.gen); got != tc.want {
			t.Errorf("EpochFor(gen %d) = %q, want %q", tc.gen, got, tc.want)
		}
	}
	if got := EpochFor([16]byte{}, 0); got != "0000000000000000-0" {
		t.Errorf("EpochFor(zero id) = %q", got)
	}
	ns := ResumeNamespace("", "t", "g", "b")
	got := NamespaceWithEpoch(ns, EpochFor(id, 2))
	if want := ns + "_73acb13b7c6d0c5d-2"; got != want {
		t.Errorf("NamespaceWithEpoch = %q, want %q", got, want)
	}
	if !strings.HasPrefix(got, ns+"_") || !keySafe(got) {
		t.Errorf("NamespaceWithEpoch = %q is not ns + _ + key-safe epoch", got)
	}
}
