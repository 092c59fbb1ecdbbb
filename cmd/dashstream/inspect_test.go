package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dashstream/dashstream/store"
	"github.com/dashstream/dashstream/store/bolt"
	"github.com/dashstream/dashstream/wire"
	"github.com/dashstream/dashstream/wire/pb"
)

// inspectFixture writes a small store into a new data directory.
func inspectFixture(t *testing.T) (dir string, epoch string) {
	t.Helper()
	dir = t.TempDir()
	ret := store.Retention{MaxAge: 168 * time.Hour, MaxBytes: 1 << 30, MaxFileBytes: 2 << 30}
	s, err := bolt.Open(filepath.Join(dir, bolt.FileName), bolt.Options{Retention: ret})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	var b store.Batch
	b.NextOffsets = map[int32]int64{0: 5, 1: 3}
	for p := int32(0); p < 2; p++ {
		for off := int64(0); off < 3+2*int64(1-p); off++ {
			b.Records = append(b.Records, store.Record{
				Partition: p, Offset: off, Time: at,
				Payload: append([]byte{wire.FrameRaw}, bytes.Repeat([]byte("token "), 10+int(off))...),
				Index: wire.Index{Type: pb.MessageType_MESSAGE_TYPE_TOKEN_CHUNK, TimestampUs: at.UnixMicro(),
					Threads: []wire.ThreadSeq{{ThreadID: "run-1", Seq: uint64(p)*10 + uint64(off) + 1}}},
			})
		}
	}
	if err := s.Append(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	epoch = s.Epoch()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return dir, epoch
}

func TestInspectText(t *testing.T) {
	dir, epoch := inspectFixture(t)
	var out, errb bytes.Buffer
	if err := runInspect(context.Background(), []string{"--data-dir", dir, "--thread", "run-1"}, &out, &errb); err != nil {
		t.Fatalf("inspect: %v (%s)", err, errb.String())
	}
	text := out.String()
	for _, want := range []string{epoch, "threads", "retention", "age 168h0m0s", "bytes 1.0 GiB", "file cap 2.0 GiB",
		"partition", "stored bytes", "thread run-1", "MESSAGE_TYPE_TOKEN_CHUNK", "(8 retained)"} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}
}

func TestInspectJSON(t *testing.T) {
	dir, epoch := inspectFixture(t)
	var out, errb bytes.Buffer
	if err := runInspect(context.Background(), []string{"--data-dir", dir, "--json", "--thread", "run-1"}, &out, &errb); err != nil {
		t.Fatalf("inspect: %v (%s)", err, errb.String())
	}
	var rep struct {
		Epoch      string `json:"epoch"`
		FileBytes  int64  `json:"file_bytes"`
		Threads    int64  `json:"threads"`
		Partitions []struct {
			Partition   *int32 `json:"partition"`
			Oldest      *int64 `json:"oldest"`
			Latest      *int64 `json:"latest"`
			Records     *int64 `json:"records"`
			RawBytes    *int64 `json:"raw_bytes"`
			StoredBytes *int64 `json:"stored_bytes"`
		} `json:"partitions"`
		Retention struct {
			MaxBytes     int64 `json:"max_bytes"`
			MaxFileBytes int64 `json:"max_file_bytes"`
		} `json:"retention"`
		Thread struct {
			Messages []struct {
				Sequence  uint64 `json:"sequence"`
				Type      string `json:"type"`
				Partition int32  `json:"partition"`
				Offset    int64  `json:"offset"`
				Size      int    `json:"size"`
			} `json:"messages"`
		} `json:"thread"`
	}
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("%v:\n%s", err, out.String())
	}
	if rep.Epoch != epoch || rep.FileBytes <= 0 || rep.Threads != 1 || rep.Retention.MaxBytes != 1<<30 || rep.Retention.MaxFileBytes != 2<<30 {
		t.Errorf("report %+v", rep)
	}
	if len(rep.Partitions) != 2 {
		t.Fatalf("%d partitions:\n%s", len(rep.Partitions), out.String())
	}
	for i, p := range rep.Partitions {
		if p.Partition == nil || p.Oldest == nil || p.Latest == nil || p.Records == nil || p.RawBytes == nil || p.StoredBytes == nil {
			t.Fatalf("partition entry %d lacks a field:\n%s", i, out.String())
		}
		wantLatest := int64(4 - 2*i)
		if *p.Partition != int32(i) || *p.Oldest != 0 || *p.Latest != wantLatest || *p.Records != wantLatest+1 || *p.RawBytes <= 0 || *p.StoredBytes <= 0 {
			t.Errorf("partition %d: %d %d %d %d %d", *p.Partition, *p.Oldest, *p.Latest, *p.Records, *p.RawBytes, *p.StoredBytes)
		}
	}
	if n := len(rep.Thread.Messages); n != 8 {
		t.Fatalf("thread messages %d, want 8", n)
	}
	if m := rep.Thread.Messages[0]; m.Sequence != 1 || m.Type != "MESSAGE_TYPE_TOKEN_CHUNK" || m.Partition != 0 || m.Offset != 0 || m.Size != 61 {
		t.Errorf("first message %+v", m)
	}
}

// TestInspectLocked: while a server holds the store, inspect says so.
func TestInspectLocked(t *testing.T) {
	dir, _ := inspectFixture(t)
	s, err := bolt.Open(filepath.Join(dir, bolt.FileName), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var out, errb bytes.Buffer
	err = runInspect(context.Background(), []string{"--data-dir", dir}, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "is locked by another process (is a server running?)") {
		t.Fatalf("inspect of a locked store: %v", err)
	}
	if !strings.Contains(err.Error(), filepath.Join(dir, bolt.FileName)) {
		t.Errorf("error does not name the file: %v", err)
	}
}

func TestInspectMissing(t *testing.T) {
	var out, errb bytes.Buffer
	err := runInspect(context.Background(), []string{"--data-dir", t.TempDir()}, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("inspect of a missing store: %v", err)
	}
	if err := runInspect(context.Background(), []string{"--bogus"}, &out, &errb); err == nil {
		t.Fatal("unknown flag accepted")
	}
}
