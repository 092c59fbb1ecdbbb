package ingest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dashstream/dashstream/ingest"
	"github.com/dashstream/dashstream/store/memory"
	"github.com/dashstream/dashstream/wire/synth"
)

// An external producer (kcat, librdkafka) writes to the embedded broker:
// its good record is ingested byte for byte, its garbage is counted as a
// decode error and lands in the DLQ.
func TestKcatIngest(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("kcat not found in CI (install the Debian package kcat): %v", err)
		}
		t.Skipf("kcat not installed: %v", err)
	}
	const topic = "kcat-ingest"
	b, err := ingest.StartBroker(context.Background(), ingest.BrokerConfig{Addr: "127.0.0.1:0", Topic: topic, Partitions: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	recs, err := synth.Corpus(5, 1)
	if err != nil {
		t.Fatal(err)
	}
	good := recs[0]
	garbage := []byte("\xff\xfenot a DashStream record\n\x00")
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// Ingest runs before kcat writes, so both records are new data (old
	// data is never DLQ'd, reference §5.3).
	st := memory.New(memory.Config{})
	cfg := itConfig([]string{b.Addr()})
	cfg.Topic = topic
	run := startIngest(t, cfg, st)
	waitFor(t, 30*time.Second, "ingest running", func() bool { return run.ing.Status().Running })
	for _, args := range [][]string{
		{"-k", string(good.Key), "-p", "0", write("good.bin", good.Value)},
		{"-k", "garbage", "-p", "1", write("garbage.bin", garbage)},
	} {
		cmd := exec.Command(kcat, append([]string{"-q", "-P", "-b", b.Addr(), "-t", topic}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("kcat: %v\n%s", err, out)
		}
	}

	waitFor(t, 30*time.Second, "both records accounted for", func() bool {
		n := st.IngestOffsets()
		return n[0] == 1 && n[1] == 1
	})
	stored := readPartition(t, st, 0)
	if len(stored) != 1 || !bytes.Equal(stored[0].Payload, good.Value) {
		t.Fatalf("partition 0 holds %d records; want kcat's record byte for byte", len(stored))
	}
	if got := readPartition(t, st, 1); len(got) != 0 {
		t.Fatalf("garbage was stored: %d records", len(got))
	}
	if skips, _ := st.Skipped(1, 0, 1); len(skips) != 1 || skips[0].Reason != "invalid" {
		t.Fatalf("garbage offset not recorded as invalid: %+v", skips)
	}
	var total float64
	for _, class := range []string{"payload_too_large", "buffer_underflow", "schema_version_mismatch", "invalid_protobuf", "unknown_decode_error"} {
		total += metricValue(t, run.reg, "websocket_decode_errors_total", map[string]string{"error_type": class})
	}
	if total != 1 {
		t.Fatalf("websocket_decode_errors_total = %v, want 1", total)
	}

	// The DLQ record, read with franz-go.
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.ConsumeTopics(topic+"-dlq"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var dlq map[string]any
	for dlq == nil {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatal("no DLQ record within 20s")
		}
		fs.EachRecord(func(r *kgo.Record) {
			if err := json.Unmarshal(r.Value, &dlq); err != nil {
				t.Fatal(err)
			}
		})
	}
	if dlq["kafka_partition"].(float64) != 1 || dlq["kafka_offset"].(float64) != 0 || dlq["message_size"].(float64) != float64(len(garbage)) {
		t.Fatalf("DLQ record %v", dlq)
	}
	if dlq["original_payload_base64"] != nil {
		t.Fatalf("DLQ carries the payload without DLQ_INCLUDE_FULL_PAYLOAD: %v", dlq)
	}
}
