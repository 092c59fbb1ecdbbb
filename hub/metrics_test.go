package hub

import (
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// hubReferenceMetrics are the reference §7 names the hub registers, with
// the label values each must export from startup (DECISIONS D8: every
// name, even at 0, with the reference's labels and no others).
var hubReferenceMetrics = map[string]struct {
	label  string
	values []string
}{
	"websocket_connected_clients":              {},
	"websocket_dropped_messages_total":         {"reason", []string{"lagged_receiver"}},
	"websocket_uptime_seconds":                 {},
	"websocket_send_failed_total":              {},
	"websocket_send_timeout_total":             {},
	"replay_buffer_memory_hits_total":          {},
	"replay_buffer_redis_hits_total":           {},
	"replay_buffer_redis_misses_total":         {},
	"replay_buffer_redis_write_dropped_total":  {},
	"replay_buffer_redis_write_failures_total": {},
	"websocket_client_lag_events_total":        {"severity", []string{"critical", "info", "warning"}},
	"websocket_client_lag_messages_total":      {"severity", []string{"critical", "info", "warning"}},
	"websocket_slow_client_disconnects_total":  {},
	"websocket_control_oversized_total":        {},
	"websocket_control_parse_failures_total":   {},
	"websocket_rejected_connections_total":     {},
	"dashstream_websocket_redis_errors_total":  {},
	"dashstream_websocket_redis_latency_ms":    {"operation", []string{"read", "write"}},
	"websocket_resume_requests_total":          {"mode", []string{"partition", "thread"}},
	"websocket_replay_messages_total":          {"mode", []string{"partition", "thread"}},
	"websocket_replay_gaps_total":              {"mode", []string{"partition", "thread"}},
	"websocket_replay_gap_messages_total":      {"mode", []string{"partition", "thread"}},
	"websocket_replay_latency_ms":              {"mode", []string{"partition", "thread"}},
}

// labelValues gathers reg and returns, per metric name, the sorted values
// of label (or "" for an unlabelled series); a series with any other
// label is reported as "bad:<name>".
func labelValues(t *testing.T, reg *prometheus.Registry) map[string][]string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, mf := range mfs {
		want := hubReferenceMetrics[mf.GetName()]
		for _, m := range mf.GetMetric() {
			v := ""
			for _, lp := range m.GetLabel() {
				if lp.GetName() != want.label {
					v = "bad:" + lp.GetName()
					break
				}
				v = lp.GetValue()
			}
			out[mf.GetName()] = append(out[mf.GetName()], v)
		}
		sort.Strings(out[mf.GetName()])
	}
	return out
}

// TestReferenceMetricsExportedAtZero: on a fresh hub every hub-owned
// reference name is exported, with every label value, at 0 (#51 included:
// resume and replay series for both modes, no `legacy`).
func TestReferenceMetricsExportedAtZero(t *testing.T) {
	reg := prometheus.NewRegistry()
	NewMetrics(reg, time.Now(), nil)
	got := labelValues(t, reg)
	for name, want := range hubReferenceMetrics {
		vals, ok := got[name]
		if !ok {
			t.Errorf("%s is not exported", name)
			continue
		}
		wantVals := want.values
		if want.label == "" {
			wantVals = []string{""}
		}
		if strings.Join(vals, ",") != strings.Join(wantVals, ",") {
			t.Errorf("%s: label %q values %q, want %q", name, want.label, vals, wantVals)
		}
	}
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if _, ours := hubReferenceMetrics[mf.GetName()]; !ours && !strings.HasPrefix(mf.GetName(), "dashstream_") {
			t.Errorf("%s: new metrics need the dashstream_ prefix (D8)", mf.GetName())
		}
		if _, ours := hubReferenceMetrics[mf.GetName()]; !ours {
			continue
		}
		for _, m := range mf.GetMetric() {
			switch {
			case m.GetCounter() != nil && m.GetCounter().GetValue() != 0,
				m.GetHistogram() != nil && m.GetHistogram().GetSampleCount() != 0:
				t.Errorf("%s starts at %v", mf.GetName(), m)
			}
		}
	}
	reasons := map[string]bool{}
	for _, mf := range mfs {
		if mf.GetName() == "dashstream_ws_rejected_total" {
			for _, m := range mf.GetMetric() {
				reasons[m.GetLabel()[0].GetValue()] = true
			}
		}
	}
	for _, r := range RejectReasons {
		if !reasons[r] {
			t.Errorf("dashstream_ws_rejected_total{reason=%q} not seeded", r)
		}
	}
}
