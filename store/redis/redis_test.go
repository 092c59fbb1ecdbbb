package redis_test

import (
	"context"
	"encoding/hex"
	"hash/fnv"
	"io"
	"log/slog"
	"os"
	"testing"

	"github.com/dashstream/dashstream/store"
	"github.com/dashstream/dashstream/store/redis"
	"github.com/dashstream/dashstream/store/storetest"
)

var ctx = context.Background()

// testLogger is quiet unless DASHSTREAM_TEST_LOG=1.
func testLogger() *slog.Logger {
	if os.Getenv("DASHSTREAM_TEST_LOG") == "1" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// nsFor maps a test directory to a namespace: the same directory reopens
// the same buffer, a fresh one is a fresh buffer.
func nsFor(dir string) string {
	h := fnv.New64a()
	_, _ = h.Write([]byte(dir))
	return "t_" + hex.EncodeToString(h.Sum(nil))
}

func openAt(tb testing.TB, url, ns string, ret store.Retention) *redis.Store {
	tb.Helper()
	s, err := redis.Open(ctx, url, redis.Options{Namespace: ns, Retention: ret, Logger: testLogger()})
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	return s
}

func TestContract(t *testing.T) {
	srv := sharedRedis(t)
	storetest.Run(t, func(t *testing.T, o storetest.Options) store.Store {
		return openAt(t, srv.url(), nsFor(o.Dir), o.Retention)
	})
}
