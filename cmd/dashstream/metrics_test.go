package main

import (
	"bufio"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/dashstream/dashstream/wire/synth"
)

// scrapeMetricNames returns the metric family names /metrics lists (its
// "# TYPE" lines). A family with no series yet has no such line.
func scrapeMetricNames(t *testing.T, addr string) map[string]bool {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: HTTP %d", resp.StatusCode)
	}
	names := map[string]bool{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) >= 3 && f[0] == "#" && f[1] == "TYPE" {
			names[f[2]] = true
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return names
}

// TestServeMetricsExported scrapes a running `serve` and checks that every
// reference metric (spec §7, DECISIONS D8) and every dashstream_ store
// series is exposed, so no metric is registered where nobody reads it
// (M-646). The server ingests a little first: the per-partition lag
// series and the ingest-latency histogram only exist once records arrived,
// and that is fair. No client connects: the WebSocket and replay series
// must be there before the first one does.
func TestServeMetricsExported(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	brokers := startKafka(t)
	recs, err := synth.Corpus(21, 5)
	if err != nil {
		t.Fatal(err)
	}
	var sent produced
	produce(t, brokers, recs, &sent)
	srv := startServer(t, brokers, t.TempDir(), freePort(t))
	srv.waitIngested(len(recs))

	want := append(append([]string{}, referenceMetricNames...), storeMetricNames...)
	var missing []string
	// The lag monitor polls every second (KAFKA_LAG_CHECK_INTERVAL_SECS=1).
	for deadline := time.Now().Add(15 * time.Second); ; {
		got := scrapeMetricNames(t, srv.addr)
		missing = missing[:0]
		for _, n := range want {
			if !got[n] {
				missing = append(missing, n)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if len(missing) > 0 {
		t.Errorf("/metrics lacks %d of %d names: %s", len(missing), len(want), strings.Join(missing, ", "))
	}
	if len(referenceMetricNames) != 46 {
		t.Errorf("referenceMetricNames has %d names; spec §7 lists 46", len(referenceMetricNames))
	}
}
