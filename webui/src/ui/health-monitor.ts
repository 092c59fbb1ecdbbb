// Polls /health (every 5 s) and the running runs (every 10 s), samples the
// client's own apply figures, and derives the stall banners: runs `running`
// with no events for more than N seconds, and an apply queue that keeps
// growing.
import type { Connection } from '../conn/connection';
import { getJson, runsUrl, type RunRow, type RunsPage } from '../conn/http';
import type { RunStore } from '../store/store';

export interface HealthBody {
  status: string;
  metrics: Record<string, number | null>;
  replay_buffer: Record<string, number | boolean>;
  kafka_status: string;
  websocket_status: string;
  alert?: string;
  store: {
    kind: string;
    epoch: string;
    bytes: number;
    records: number;
    oldest_age_seconds: number | null;
    full: boolean;
    paused: boolean;
    error?: string;
  };
}

export interface HealthSample {
  t: number;
  ok: boolean;
  body?: HealthBody;
  /** Kafka messages/s since the previous good sample. */
  rate?: number;
  error?: string;
}

export interface UiSample {
  t: number;
  lagP95: number;
  lagP50: number;
  queue: number;
  recPerSec: number;
  state: string;
}

export interface Stall {
  thread: string;
  graph: string;
  idleMs: number;
}

const STALL_KEY = 'dashstream:stallSecs';
const DISMISS_KEY = 'dashstream:dismissedStalls';

export class HealthMonitor {
  samples: HealthSample[] = [];
  ui: UiSample[] = [];
  running: RunRow[] = [];
  lastOkAt = 0;
  stallSecs = 30;
  dismissed = new Set<string>();
  changes = 0;
  private readonly listeners = new Set<() => void>();
  private timers: ReturnType<typeof setInterval>[] = [];
  private inflight = false;
  private readonly store: RunStore;
  private readonly conn: Connection;

  constructor(store: RunStore, conn: Connection) {
    this.store = store;
    this.conn = conn;
    try {
      const s = Number(localStorage.getItem(STALL_KEY));
      if (Number.isFinite(s) && s >= 5) this.stallSecs = s;
      const d: unknown = JSON.parse(sessionStorage.getItem(DISMISS_KEY) ?? '[]');
      if (Array.isArray(d)) for (const x of d) if (typeof x === 'string') this.dismissed.add(x);
    } catch {
      // defaults
    }
  }

  subscribe(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private changed(): void {
    this.changes++;
    for (const l of this.listeners) l();
  }

  start(): void {
    void this.pollHealth();
    void this.pollRunning();
    this.timers.push(setInterval(() => void this.pollHealth(), 5000));
    this.timers.push(setInterval(() => void this.pollRunning(), 10_000));
    this.timers.push(setInterval(() => this.sampleUi(), 2000));
  }

  stop(): void {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
  }

  setStallSecs(s: number): void {
    this.stallSecs = Math.max(5, Math.round(s));
    try {
      localStorage.setItem(STALL_KEY, String(this.stallSecs));
    } catch {
      // ignore
    }
    this.changed();
  }

  dismiss(threads: string[]): void {
    for (const t of threads) this.dismissed.add(t);
    try {
      sessionStorage.setItem(DISMISS_KEY, JSON.stringify([...this.dismissed].slice(-500)));
    } catch {
      // ignore
    }
    this.changed();
  }

  private async pollHealth(): Promise<void> {
    if (this.inflight) return;
    this.inflight = true;
    const t = Date.now();
    try {
      const body = await getJson<HealthBody>('/health', { timeoutMs: 4000 });
      const prev = [...this.samples].reverse().find((s) => s.ok && s.body);
      let rate: number | undefined;
      if (prev?.body) {
        const dn = (body.metrics.kafka_messages_received ?? 0) - (prev.body.metrics.kafka_messages_received ?? 0);
        const dt = (t - prev.t) / 1000;
        if (dt > 0 && dn >= 0) rate = dn / dt;
      }
      this.push({ t, ok: true, body, ...(rate !== undefined ? { rate } : {}) });
      this.lastOkAt = t;
    } catch (e) {
      this.push({ t, ok: false, error: (e as Error).message });
    } finally {
      this.inflight = false;
    }
    this.changed();
  }

  private push(s: HealthSample): void {
    this.samples.push(s);
    if (this.samples.length > 120) this.samples.splice(0, this.samples.length - 120);
  }

  private async pollRunning(): Promise<void> {
    try {
      const page = await getJson<RunsPage>(runsUrl({ status: 'running', limit: 200 }), { timeoutMs: 5000 });
      this.running = page.runs;
      this.changed();
    } catch {
      // the runs page shows API errors
    }
  }

  private sampleUi(): void {
    const m = this.conn.pipeline.metrics.snapshot();
    this.ui.push({
      t: Date.now(),
      lagP95: m.applyLagP95,
      lagP50: m.applyLagP50,
      queue: m.queueFrames,
      recPerSec: m.recordsPerSec,
      state: this.conn.state,
    });
    if (this.ui.length > 150) this.ui.splice(0, this.ui.length - 150);
    this.changed();
  }

  /** /health is stale after 15 s without a good sample. */
  healthStale(now = Date.now()): boolean {
    return this.samples.length > 0 && now - this.lastOkAt > 15_000;
  }

  /** Runs `running` with no event for more than stallSecs (server and live stream). */
  stalls(now = Date.now()): Stall[] {
    const out: Stall[] = [];
    for (const r of this.running) {
      const live = this.store.summaries.get(r.thread_id);
      if (live && live.status && live.status !== 'running') continue;
      const server = r.updated_at ? Date.parse(r.updated_at) : r.started_at ? Date.parse(r.started_at) : 0;
      const last = Math.max(server || 0, live?.lastSeenAt ?? 0);
      if (!last) continue;
      const idle = now - last;
      if (idle > this.stallSecs * 1000) out.push({ thread: r.thread_id, graph: r.graph_name, idleMs: idle });
    }
    return out.sort((a, b) => a.idleMs - b.idleMs);
  }

  /** The apply queue kept growing over the last 10 s, or the lag is large. */
  queueGrowing(): { growing: boolean; queue: number; lagP95: number } {
    const last = this.ui.slice(-6);
    const q = last[last.length - 1];
    if (!q) return { growing: false, queue: 0, lagP95: 0 };
    let rising = last.length >= 6;
    for (let i = 1; i < last.length; i++) if ((last[i] as UiSample).queue <= (last[i - 1] as UiSample).queue) rising = false;
    return { growing: (rising && q.queue > 20) || q.lagP95 > 5000, queue: q.queue, lagP95: q.lagP95 };
  }
}
