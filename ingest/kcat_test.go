package ingest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/dashstream/dashstream/wire"
	"github.com/dashstream/dashstream/wire/pb"
)

// kcatPath returns the kcat binary, skipping the test without it (failing
// in CI, where .ci/run installs it).
func kcatPath(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("kcat")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("kcat not found in CI (install the Debian package kcat): %v", err)
		}
		t.Skipf("kcat not installed: %v", err)
	}
	return p
}

// runKcat runs kcat with args and returns its stdout.
func runKcat(t *testing.T, kcat string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, kcat, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("kcat %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, stdout.Bytes(), stderr.Bytes())
	}
	return stdout.String()
}

// kcatTestRecord returns a framed DashStream Event record.
func kcatTestRecord(t *testing.T) []byte {
	t.Helper()
	m := &pb.DashStreamMessage{Message: &pb.DashStreamMessage_Event{Event: &pb.Event{
		Header: &pb.Header{
			MessageId:   []byte{0x00, 0x0a, 0xff, 0x0d},
			TimestampUs: time.Now().UnixMicro(),
			TenantId:    "tenant",
			ThreadId:    "thread-kcat",
			Sequence:    1,
			Type:        pb.MessageType_MESSAGE_TYPE_EVENT,
		},
		EventType: pb.EventType_EVENT_TYPE_GRAPH_START,
		NodeId:    "start\nnode",
	}}}
	b, err := wire.Encode(m)
	if err != nil {
		// wire.Encode may still be a stub while the codec lands; a
		// small message is framed as 0x00 + protobuf either way
		// (reference §8.1).
		t.Logf("wire.Encode: %v; framing by hand", err)
		raw, err := proto.Marshal(m)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		b = append([]byte{wire.FrameRaw}, raw...)
	}
	return b
}

// An external Kafka client (kcat, librdkafka) can produce to and consume
// from the embedded broker, and binary values survive byte for byte.
func TestKcatEmbeddedBroker(t *testing.T) {
	kcat := kcatPath(t)
	const topic = "kcat-events"
	b := brokerStartTest(t, BrokerConfig{Topic: topic, Partitions: 3})

	good := kcatTestRecord(t)
	garbage := []byte("\xff\xfenot a DashStream record\n\x00\x01\r\n")
	if !bytes.ContainsAny(good, "\n\x00") {
		t.Fatalf("test record %x has no newline or NUL byte to survive", good)
	}
	dir := t.TempDir()
	goodFile := filepath.Join(dir, "good.bin")
	badFile := filepath.Join(dir, "garbage.bin")
	if err := os.WriteFile(goodFile, good, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(badFile, garbage, 0o600); err != nil {
		t.Fatal(err)
	}

	// A file argument (without -l) is sent whole as one message.
	runKcat(t, kcat, "-q", "-P", "-b", b.Addr(), "-t", topic, "-k", "thread-kcat", "-p", "1", goodFile)
	runKcat(t, kcat, "-q", "-P", "-b", b.Addr(), "-t", topic, "-k", "garbage", "-p", "2", badFile)

	out := runKcat(t, kcat, "-q", "-C", "-b", b.Addr(), "-t", topic, "-e", "-o", "beginning", "-f", "%k %p %o %S\n")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	slices.Sort(lines)
	want := []string{
		fmt.Sprintf("garbage 2 0 %d", len(garbage)),
		fmt.Sprintf("thread-kcat 1 0 %d", len(good)),
	}
	if !slices.Equal(lines, want) {
		t.Fatalf("kcat consumed %q, want %q", lines, want)
	}

	// kcat's metadata listing sees the topics too.
	md := runKcat(t, kcat, "-q", "-L", "-b", b.Addr())
	for _, name := range []string{topic, topic + "-dlq"} {
		if !strings.Contains(md, fmt.Sprintf("topic %q with 3 partitions", name)) {
			t.Fatalf("kcat -L does not list %s with 3 partitions:\n%s", name, md)
		}
	}

	// franz-go reads the exact bytes kcat wrote.
	recs := brokerConsumeAll(t, b, topic, 2)
	slices.SortFunc(recs, func(a, b *kgo.Record) int { return int(a.Partition - b.Partition) })
	if recs[0].Partition != 1 || string(recs[0].Key) != "thread-kcat" || !bytes.Equal(recs[0].Value, good) {
		t.Fatalf("record 1: %d %q %x, want 1 thread-kcat %x", recs[0].Partition, recs[0].Key, recs[0].Value, good)
	}
	if recs[1].Partition != 2 || string(recs[1].Key) != "garbage" || !bytes.Equal(recs[1].Value, garbage) {
		t.Fatalf("record 2: %d %q %x, want 2 garbage %x", recs[1].Partition, recs[1].Key, recs[1].Value, garbage)
	}
	if good[0] != wire.FrameRaw {
		t.Fatalf("test record framing byte %#x, want %#x (small messages are not compressed)", good[0], wire.FrameRaw)
	}
	var m pb.DashStreamMessage
	if err := proto.Unmarshal(recs[0].Value[1:], &m); err != nil || m.GetEvent().GetHeader().GetThreadId() != "thread-kcat" {
		t.Fatalf("good record does not decode back: %v %v", err, &m)
	}
}
