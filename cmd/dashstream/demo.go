package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dashstream/dashstream/ingest"
	"github.com/dashstream/dashstream/wire/synth"
)

// avgRecordsPerRun converts --runs-per-second into a record rate: the
// mixed synthetic corpus averages about 140 Kafka records per run.
const avgRecordsPerRun = 140

// runDemo starts an embedded Kafka-protocol broker, a synthetic producer
// and the server in one process.
func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := loadConfig("demo", args, os.Getenv)
	if err != nil {
		return err
	}
	logger := newLogger(cfg, stderr)
	ic := cfg.Ingest.WithDefaults()
	broker, err := ingest.StartBrokerFallback(ctx, ingest.BrokerConfig{
		Addr:    cfg.KafkaAddr,
		DataDir: filepath.Join(cfg.Store.DataDir, "kafka"),
		Topic:   ic.Topic, DLQTopic: ic.DLQTopic,
		Logger: logger,
	})
	if err != nil {
		return fmt.Errorf("embedded broker: %w", err)
	}
	defer broker.Close()
	fmt.Fprintf(stdout, "embedded Kafka broker on %s (topic %s); external producers may connect to it\n", broker.Addr(), ic.Topic)
	cfg.Ingest.Brokers = []string{broker.Addr()}

	prodCtx, stopProducer := context.WithCancel(ctx)
	defer stopProducer()
	prodDone := make(chan struct{})
	if cfg.RunsPerSecond > 0 {
		go func() {
			defer close(prodDone)
			if err := demoProducer(prodCtx, cfg, broker.Addr(), ic.Topic, logger); err != nil {
				logger.Error("demo producer stopped", "err", err)
			}
		}()
	} else {
		close(prodDone)
		logger.Info("no demo producer (--runs-per-second 0); waiting for external producers")
	}
	err = serve(ctx, cfg, stdout, stderr, func(addr string) {
		fmt.Fprintf(stdout, "open http://%s in your browser\n", addr)
	})
	stopProducer()
	// The producer flushes what it handed to the client; a stuck flush
	// must not break the 10 s SIGTERM promise (serve used most of it), and
	// losing synthetic records is harmless.
	select {
	case <-prodDone:
	case <-time.After(time.Second):
		logger.Warn("demo producer did not stop within 1s; leaving it")
	}
	return err
}

func demoProducer(ctx context.Context, cfg *config, addr, topic string, logger *slog.Logger) error {
	client, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.RecordPartitioner(synth.KafkaPartitioner()),
		kgo.ProducerLinger(5*time.Millisecond), kgo.RecordDeliveryTimeout(30*time.Second))
	if err != nil {
		return err
	}
	defer client.Close()
	gen, err := synth.NewGenerator(synth.Config{
		Seed: time.Now().UnixNano(), Concurrency: 10, Shape: cfg.Shape, MinMessages: cfg.MinMessages, Now: time.Now,
	})
	if err != nil {
		return err
	}
	logger.Info("demo producer started", "runs_per_second", cfg.RunsPerSecond, "shape", cfg.Shape)
	_, err = synth.Produce(ctx, client, topic, gen, synth.PumpOptions{Rate: cfg.RunsPerSecond * avgRecordsPerRun})
	return err
}
