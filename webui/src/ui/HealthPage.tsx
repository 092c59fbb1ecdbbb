// Server /health figures over time, this tab's connection and apply
// figures, and diagnostics.
import { useState } from 'react';
import { useConnection, useHealth, useNow, useServices, useStoreVersion } from './context';
import { fmtAgo, fmtBytes, fmtDurationMs, fmtInt, fmtTime } from './format';

function Sparkline({ values, color = '#60a5fa', height = 36 }: { values: number[]; color?: string; height?: number }) {
  const w = 200;
  if (values.length < 2) return <svg className="spark" viewBox={`0 0 ${w} ${height}`} aria-hidden />;
  const max = Math.max(...values, 1e-9);
  const min = Math.min(...values, 0);
  const span = max - min || 1;
  const pts = values.map((v, i) => `${((i / (values.length - 1)) * w).toFixed(1)},${(height - 2 - ((v - min) / span) * (height - 4)).toFixed(1)}`);
  return (
    <svg className="spark" viewBox={`0 0 ${w} ${height}`} preserveAspectRatio="none" aria-hidden>
      <polyline points={`0,${height} ${pts.join(' ')} ${w},${height}`} fill={color} fillOpacity={0.12} stroke="none" />
      <polyline points={pts.join(' ')} fill="none" stroke={color} strokeWidth={1.5} vectorEffect="non-scaling-stroke" />
    </svg>
  );
}

function Card({ title, value, sub, values, color, warn, testid }: { title: string; value: string; sub?: string; values?: number[]; color?: string; warn?: 'warn' | 'bad'; testid?: string }) {
  return (
    <div className={`card metric${warn ? ' ' + warn : ''}`} data-testid={testid}>
      <div className="metric-title">{title}</div>
      <div className="metric-value">{value}</div>
      {sub && <div className="metric-sub muted small">{sub}</div>}
      {values && <Sparkline values={values} {...(color ? { color } : {})} />}
    </div>
  );
}

export function HealthPage() {
  const health = useHealth();
  const conn = useConnection();
  const { store, cursors } = useServices();
  useStoreVersion(1000);
  const now = useNow(1000);
  const [stallInput, setStallInput] = useState(String(health.stallSecs));
  const good = health.samples.filter((s) => s.ok && s.body);
  const last = good[good.length - 1]?.body;
  const m = conn.pipeline.metrics.snapshot();
  const ui = health.ui;
  const stalls = health.stalls(now);
  const stale = health.healthStale(now);
  const lagWarn = m.applyLagP95 > 5000 ? 'bad' : m.applyLagP95 > 1500 ? 'warn' : undefined;
  const queueWarn = m.queueFrames > 500 ? 'bad' : m.queueFrames > 100 ? 'warn' : undefined;
  return (
    <div className="health-page" data-testid="health-page">
      <div className="toolbar">
        <h1 className="page-title">Health</h1>
        <span className={`badge status-${last?.status === 'healthy' ? 'completed' : last ? 'error' : 'running'}`} data-testid="server-status">
          server {stale ? 'stale' : (last?.status ?? 'unknown')}
        </span>
        <span className="muted small">
          {health.lastOkAt ? `updated ${fmtAgo(now - health.lastOkAt)}` : 'waiting for /health…'} · polled every 5 s
          {conn.version ? ` · ${conn.version.component} ${conn.version.version} · schema v${conn.version.schema_version} · epoch ${conn.epoch}` : ''}
        </span>
      </div>
      {last?.alert && <div className="banner warn">{last.alert}</div>}
      <h2 className="section">Server</h2>
      <div className="cards">
        <Card
          title="Kafka messages / s"
          value={good.length > 1 ? fmtInt(good[good.length - 1]?.rate ?? 0) : '—'}
          sub={`${fmtInt(last?.metrics.kafka_messages_received ?? 0)} since start · last ${last?.metrics.last_kafka_message_ago_seconds ?? '—'} s ago`}
          values={good.map((s) => s.rate ?? 0)}
        />
        <Card title="Connected clients" value={fmtInt(last?.metrics.connected_clients ?? 0)} values={good.map((s) => s.body?.metrics.connected_clients ?? 0)} color="#a78bfa" />
        <Card
          title="Stored records"
          value={fmtInt(last?.store.records ?? 0)}
          sub={`${fmtBytes(last?.store.bytes ?? 0)} · ${last?.store.kind ?? ''}${last?.store.oldest_age_seconds != null ? ` · oldest ${fmtDurationMs(last.store.oldest_age_seconds * 1000)}` : ''}${last?.store.paused ? ' · INGEST PAUSED' : ''}`}
          values={good.map((s) => s.body?.store.records ?? 0)}
          color="#34d399"
          {...(last?.store.full || last?.store.paused ? { warn: 'bad' as const } : {})}
        />
        <Card
          title="Decode errors (2 min)"
          value={fmtInt(last?.metrics.decode_errors_last_120s ?? 0)}
          sub={`${fmtInt(last?.metrics.decode_errors ?? 0)} since start`}
          values={good.map((s) => s.body?.metrics.decode_errors_last_120s ?? 0)}
          color="#f87171"
          {...((last?.metrics.decode_errors_last_120s ?? 0) > 0 ? { warn: 'warn' as const } : {})}
        />
        <Card
          title="Dropped (2 min)"
          value={fmtInt(last?.metrics.dropped_messages_last_120s ?? 0)}
          sub={`send failures ${fmtInt(last?.metrics.send_failed ?? 0)} · timeouts ${fmtInt(last?.metrics.send_timeout ?? 0)}`}
          values={good.map((s) => s.body?.metrics.dropped_messages_last_120s ?? 0)}
          color="#fbbf24"
        />
        <Card title="Uptime" value={last ? fmtDurationMs((last.metrics.uptime_seconds ?? 0) * 1000) : '—'} sub={`kafka ${last?.kafka_status ?? '—'} · websocket ${last?.websocket_status ?? '—'}`} />
      </div>
      <h2 className="section">This tab</h2>
      <div className="cards">
        <Card
          title="Connection"
          value={conn.state}
          sub={`generation ${conn.gen} · ${conn.reconnects} reconnects${conn.lastClose ? ` · last close ${conn.lastClose.code}` : ''}${conn.lastError ? ` · ${conn.lastError}` : ''}`}
          testid="health-connection"
          {...(conn.state === 'reconnecting' ? { warn: 'warn' as const } : {})}
        />
        <Card
          title="Apply lag p95 (60 s)"
          value={fmtDurationMs(m.applyLagP95)}
          sub={`p50 ${fmtDurationMs(m.applyLagP50)} · max ${fmtDurationMs(m.applyLagMax)} · ${fmtInt(m.applyLagSamples)} records`}
          values={ui.map((u) => u.lagP95)}
          color="#f472b6"
          testid="health-apply-lag"
          {...(lagWarn ? { warn: lagWarn } : {})}
        />
        <Card
          title="Apply queue"
          value={`${fmtInt(m.queueFrames)} frames`}
          sub={fmtBytes(m.queueBytes)}
          values={ui.map((u) => u.queue)}
          color="#fb923c"
          testid="health-apply-queue"
          {...(queueWarn ? { warn: queueWarn } : {})}
        />
        <Card title="Applied records / s" value={fmtInt(m.recordsPerSec)} sub={`${fmtInt(m.kafkaRecordsApplied)} Kafka records applied · decode ${m.decodeMsAvg} ms/frame`} values={ui.map((u) => u.recPerSec)} />
        <Card
          title="Runs in memory"
          value={fmtInt(store.runs.size)}
          sub={`${fmtBytes(store.totalBytes())} · hashes verified ${fmtInt(store.verifier.verified)} · mismatches ${fmtInt(store.verifier.mismatches)} · deferred ${fmtInt(store.verifier.deferred)}`}
        />
        <Card
          title="Resume cursors"
          value={`${cursors.committed.size} partitions`}
          sub={Object.entries(cursors.toResume()).map(([p, o]) => `p${p}@${o}`).join(' ') || 'none yet'}
          testid="health-cursors"
        />
      </div>
      <h2 className="section">Stalls</h2>
      <div className="stall-settings">
        <label>
          A running run is stalled after{' '}
          <input
            type="number"
            min={5}
            value={stallInput}
            onChange={(e) => setStallInput(e.target.value)}
            onBlur={() => health.setStallSecs(Number(stallInput) || 30)}
            style={{ width: 70 }}
          />{' '}
          s without events
        </label>
        <span className="muted small"> · {stalls.length} stalled now</span>
      </div>
      {stalls.length > 0 && (
        <ul className="plain">
          {stalls.slice(0, 20).map((s) => (
            <li key={s.thread}>
              <a href={`/?thread=${encodeURIComponent(s.thread)}`}>{s.graph || 'run'}</a> <span className="mono small muted">{s.thread}</span> — idle {fmtDurationMs(s.idleMs)}
            </li>
          ))}
        </ul>
      )}
      <h2 className="section">Notices and diagnostics</h2>
      {conn.notices.length === 0 && store.diagnostics.length === 0 ? (
        <p className="muted">Nothing to report.</p>
      ) : (
        <table className="diag">
          <tbody>
            {[...conn.notices.map((n) => ({ at: n.at, code: n.kind, text: n.text, where: '' })), ...store.diagnostics.map((d) => ({ at: d.at, code: d.code, text: d.message, where: d.where }))]
              .sort((a, b) => b.at - a.at)
              .slice(0, 50)
              .map((x, i) => (
                <tr key={i}>
                  <td className="mono small">{fmtTime(x.at)}</td>
                  <td className="mono small">{x.code}</td>
                  <td>{x.text}</td>
                  <td className="mono small muted">{x.where}</td>
                </tr>
              ))}
          </tbody>
        </table>
      )}
    </div>
  );
}
