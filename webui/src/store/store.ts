// The client store: runs in memory (bounded, the viewed run pinned), live
// summaries for the run list, and diagnostics (decode errors, quarantined
// records). Listeners are notified at most once per animation frame.
import { EventType } from '../gen/dashstream_pb';
import type { Rec, RecordError } from '../lib/types';
import { RunModel } from './run';
import type { RunStatus } from './derive';
import { Verifier, type VerifierOptions } from './verify';

export interface LiveSummary {
  thread: string;
  /** Date.now() of the last live record. */
  lastSeenAt: number;
  lastSeq: bigint;
  graphName?: string;
  status?: RunStatus;
  lastError?: string;
  records: number;
}

export interface Diagnostic {
  at: number;
  code: string;
  message: string;
  where: string;
}

export interface StoreOptions {
  maxRuns?: number;
  maxBytes?: number;
  maxSummaries?: number;
  schedule?: (fn: () => void) => void;
  verifier?: VerifierOptions;
  now?: () => number;
}

// Listeners re-render at most every few frames anyway: a short timer is
// cheaper than an animation frame per applied batch.
const defaultSchedule = (fn: () => void) => {
  setTimeout(fn, 50);
};

export class RunStore {
  readonly runs = new Map<string, RunModel>();
  readonly summaries = new Map<string, LiveSummary>();
  readonly pinned = new Set<string>();
  readonly verifier: Verifier;
  diagnostics: Diagnostic[] = [];
  quarantined = 0;
  version = 0;
  liveRecords = 0;
  private readonly listeners = new Set<() => void>();
  private scheduled = false;
  private readonly opts: Required<Omit<StoreOptions, 'verifier'>>;

  constructor(opts: StoreOptions = {}) {
    this.opts = {
      maxRuns: opts.maxRuns ?? 60,
      maxBytes: opts.maxBytes ?? 160 * 1024 * 1024,
      maxSummaries: opts.maxSummaries ?? 5000,
      schedule: opts.schedule ?? defaultSchedule,
      now: opts.now ?? (() => Date.now()),
    };
    this.verifier = new Verifier({ ...opts.verifier, onResult: () => this.notify(), isPinned: (r) => this.pinned.has(r.thread) });
  }

  subscribe(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Coalesced change notification. */
  notify(): void {
    this.version++;
    if (this.scheduled) return;
    this.scheduled = true;
    this.opts.schedule(() => {
      this.scheduled = false;
      for (const l of this.listeners) l();
    });
  }

  get(thread: string): RunModel | undefined {
    return this.runs.get(thread);
  }

  ensure(thread: string): RunModel {
    let r = this.runs.get(thread);
    if (!r) {
      r = new RunModel(thread);
      this.runs.set(thread, r);
    }
    return r;
  }

  pin(thread: string): RunModel {
    this.pinned.add(thread);
    const run = this.ensure(thread);
    this.verifier.promote(run);
    return run;
  }

  unpin(thread: string): void {
    this.pinned.delete(thread);
  }

  /** Applies decoded live records (the pipeline calls this, then commits). */
  applyLive(records: readonly Rec[], errors: readonly RecordError[] = []): void {
    const now = this.opts.now();
    const touched = new Set<RunModel>();
    for (const r of records) {
      if (!r.thread) {
        this.quarantined++;
        this.diag('NO_THREAD', `${r.kind} record without thread id`, r.cursor ? `p${r.cursor.p}@${r.cursor.o}` : '');
        continue;
      }
      const run = this.ensure(r.thread);
      run.add(r, 'live', now);
      touched.add(run);
      this.liveRecords++;
      this.summarize(r, now);
    }
    for (const e of errors) this.diag(e.code, e.message, e.cursor ? `p${e.cursor.p}@${e.cursor.o}` : '');
    for (const run of touched) this.verifier.touch(run);
    if (records.length > 0 || errors.length > 0) {
      this.evict();
      this.notify();
    }
  }

  /** Applies records of one run fetched from the records API. */
  applyBackfill(thread: string, records: readonly Rec[]): number {
    const run = this.ensure(thread);
    const now = this.opts.now();
    let added = 0;
    for (const r of records) {
      if (r.thread && r.thread !== thread) continue; // other threads of a shared EventBatch
      if (run.add(r, 'backfill', now)) added++;
    }
    run.backfill.records += records.length;
    this.verifier.touch(run);
    this.notify();
    return added;
  }

  private summarize(r: Rec, now: number): void {
    let s = this.summaries.get(r.thread);
    if (!s) {
      s = { thread: r.thread, lastSeenAt: now, lastSeq: 0n, records: 0 };
      this.summaries.set(r.thread, s);
      if (this.summaries.size > this.opts.maxSummaries) {
        const oldest = this.summaries.keys().next().value;
        if (oldest !== undefined) this.summaries.delete(oldest);
      }
    }
    s.lastSeenAt = now;
    s.records++;
    if (r.seq > s.lastSeq) s.lastSeq = r.seq;
    if (r.kind === 'event') {
      if (r.type === EventType.GRAPH_START) {
        s.status = 'running';
        if (typeof r.attrs.graph_name === 'string') s.graphName = r.attrs.graph_name;
      } else if (r.type === EventType.GRAPH_END) s.status = 'completed';
      else if (r.type === EventType.NODE_ERROR || r.type === EventType.GRAPH_ERROR) {
        s.status = 'error';
        if (typeof r.attrs.error === 'string') s.lastError = r.attrs.error;
      }
    }
  }

  diag(code: string, message: string, where: string): void {
    this.diagnostics.push({ at: this.opts.now(), code, message, where });
    if (this.diagnostics.length > 200) this.diagnostics.splice(0, this.diagnostics.length - 200);
    this.notify();
  }

  totalBytes(): number {
    let n = 0;
    for (const r of this.runs.values()) n += r.bytes;
    return n;
  }

  /** Drops the least recently touched unpinned runs beyond the limits. */
  evict(): void {
    if (this.runs.size <= this.opts.maxRuns && this.totalBytes() <= this.opts.maxBytes) return;
    const victims = [...this.runs.values()]
      .filter((r) => !this.pinned.has(r.thread))
      .sort((a, b) => a.touchedAt - b.touchedAt);
    let bytes = this.totalBytes();
    for (const v of victims) {
      if (this.runs.size <= this.opts.maxRuns && bytes <= this.opts.maxBytes) break;
      this.runs.delete(v.thread);
      this.verifier.forget(v);
      bytes -= v.bytes;
    }
  }

  /** Forgets everything (a new epoch: the old history is gone). */
  clear(): void {
    for (const r of this.runs.values()) this.verifier.forget(r);
    this.runs.clear();
    this.summaries.clear();
    this.notify();
  }

  dispose(): void {
    this.verifier.dispose();
    this.listeners.clear();
  }
}
