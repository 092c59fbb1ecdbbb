// One run (thread) in memory: its records in sequence order from both
// sources (the live socket and the backfill API), deduplicated, with the
// derived view computed lazily and incrementally, and the run's own
// integrity report (gaps, hash mismatches, stale state).
import type { Rec, TraceRec } from '../lib/types';
import { cursorKey } from '../lib/types';
import { Deriver, type StateVersion } from './derive';

export type Source = 'live' | 'backfill';

export interface BackfillState {
  state: 'idle' | 'loading' | 'done' | 'error';
  pages: number;
  records: number;
  error?: string;
  /** Server's message count for the run when the backfill started. */
  expected?: number;
}

export interface Gap {
  from: bigint;
  to: bigint;
}

export interface Integrity {
  firstSeq: bigint;
  lastSeq: bigint;
  /** Missing sequence ranges inside the known history. */
  gaps: Gap[];
  /** Earlier history that the server no longer retains (backfill done, first seq > 1). */
  historyStartsAt?: bigint;
  mismatches: { seq: bigint; expected: string; computed: string }[];
  errors: { seq: bigint; error: string }[];
  /** "state may be stale since seq N" */
  staleSince?: bigint;
  /** The state is unknown until a full state or the history arrives. */
  stateUnknown: boolean;
  duplicates: number;
  reorders: number;
  conflicts: number;
  /** No gaps, no mismatches, no stale state. */
  ok: boolean;
}

export class RunModel {
  readonly thread: string;
  /** Sequenced records, ascending by seq. */
  private readonly order: Rec[] = [];
  private readonly bySeq = new Map<bigint, Rec>();
  readonly unsequenced: Rec[] = [];
  private readonly unseqKeys = new Set<string>();
  /** Distinct Kafka records touching this run (the message count). */
  private readonly kafkaKeys = new Set<string>();
  duplicates = 0;
  reorders = 0;
  conflicts = 0;
  bytes = 0;
  version = 0;
  /** performance.now() of the last record from the live socket. */
  lastLiveAt = 0;
  /** Date.now() of the last change. */
  touchedAt = 0;
  sawLive = false;
  backfill: BackfillState = { state: 'idle', pages: 0, records: 0 };

  private deriver = new Deriver();
  private dirty = false;
  private integrityCache: { version: number; verifyVersion: number; value: Integrity } | undefined;
  /** Bumped by the verifier when a verification result lands. */
  verifyVersion = 0;

  constructor(thread: string) {
    this.thread = thread;
  }

  get messageCount(): number {
    return this.kafkaKeys.size;
  }

  get recordCount(): number {
    return this.order.length + this.unsequenced.length;
  }

  get maxSeq(): bigint {
    const last = this.order[this.order.length - 1];
    return last ? last.seq : 0n;
  }

  get minSeq(): bigint {
    const first = this.order[0];
    return first ? first.seq : 0n;
  }

  records(): readonly Rec[] {
    return this.order;
  }

  recordAt(seq: bigint): Rec | undefined {
    return this.bySeq.get(seq);
  }

  /** Adds one record; returns false for a duplicate. */
  add(r: Rec, source: Source, now = Date.now()): boolean {
    if (r.cursor) this.kafkaKeys.add(cursorKey(r.cursor));
    if (source === 'live') {
      this.sawLive = true;
      this.lastLiveAt = typeof performance !== 'undefined' ? performance.now() : now;
    }
    this.touchedAt = now;
    if (r.seq === 0n) {
      const k = `${r.cursor ? cursorKey(r.cursor) : ''}|${r.kind}|${r.msgId}`;
      if (this.unseqKeys.has(k)) {
        this.duplicates++;
        return false;
      }
      this.unseqKeys.add(k);
      this.unsequenced.push(r);
      this.bytes += r.size;
      this.version++;
      return true;
    }
    const prev = this.bySeq.get(r.seq);
    if (prev) {
      if (prev.msgId && r.msgId && prev.msgId !== r.msgId) this.conflicts++;
      else this.duplicates++;
      return false;
    }
    this.bySeq.set(r.seq, r);
    this.bytes += r.size;
    const last = this.order[this.order.length - 1];
    if (!last || r.seq > last.seq) {
      this.order.push(r);
    } else {
      // Earlier than what we have: backfill (expected) or a reorder.
      if (source === 'live') this.reorders++;
      let lo = 0;
      let hi = this.order.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if ((this.order[mid] as Rec).seq < r.seq) lo = mid + 1;
        else hi = mid;
      }
      this.order.splice(lo, 0, r);
      if (lo < this.deriver.fed) this.dirty = true;
    }
    this.version++;
    return true;
  }

  /** The derived view, brought up to date. */
  derive(): Deriver {
    if (this.dirty) {
      const prev = this.deriver;
      this.deriver = new Deriver();
      this.dirty = false;
      // Keep verification results of versions that did not change.
      this.feedAll();
      carryVerification(prev.states, this.deriver.states);
    } else if (this.deriver.fed < this.order.length) {
      this.feedAll();
    }
    const trace = this.unsequenced.find((r): r is TraceRec => r.kind === 'trace');
    if (trace) this.deriver.trace = trace;
    return this.deriver;
  }

  private feedAll(): void {
    const d = this.deriver;
    for (let i = d.fed; i < this.order.length; i++) d.feed(this.order[i] as Rec);
  }

  /** The integrity report (cached per version). */
  integrity(): Integrity {
    const c = this.integrityCache;
    if (c && c.version === this.version && c.verifyVersion === this.verifyVersion) return c.value;
    const value = computeIntegrity(this, this.derive());
    this.integrityCache = { version: this.version, verifyVersion: this.verifyVersion, value };
    return value;
  }
}

/** Copies verify results onto equal versions of a re-derived chain. */
function carryVerification(prev: readonly StateVersion[], next: StateVersion[]): void {
  const bySeq = new Map<bigint, StateVersion>();
  for (const v of prev) bySeq.set(v.seq, v);
  for (const v of next) {
    const p = bySeq.get(v.seq);
    if (!p || v.verify !== 'pending') continue;
    // Same state object (structural sharing survived) or same raw bytes.
    if (p.state !== undefined && p.state === v.state && (p.verify === 'ok' || p.verify === 'mismatch')) {
      v.verify = p.verify;
      if (p.computed) v.computed = p.computed;
    }
  }
}

function computeIntegrity(run: RunModel, d: Deriver): Integrity {
  const recs = run.records();
  const first = recs[0]?.seq ?? 0n;
  const last = recs[recs.length - 1]?.seq ?? 0n;
  const complete = run.backfill.state === 'done';
  // Where contiguity is expected from: seq 1 once the history is loaded (or
  // the run was seen from its start), else the first record we have.
  const base = complete || d.hasStart ? 1n : first;
  const gaps: Gap[] = [];
  let historyStartsAt: bigint | undefined;
  if (recs.length > 0) {
    if (complete && first > 1n && !d.hasStart) historyStartsAt = first;
    let expect = historyStartsAt ?? base;
    for (const r of recs) {
      if (r.seq > expect) gaps.push({ from: expect, to: r.seq - 1n });
      if (r.seq >= expect) expect = r.seq + 1n;
    }
  }
  const mismatches: Integrity['mismatches'] = [];
  const errors: Integrity['errors'] = [];
  // Timeline of problems and clears, by sequence.
  type Ev = { at: bigint; report: bigint; problem: boolean };
  const evs: Ev[] = [];
  for (const g of gaps) evs.push({ at: g.to, report: g.from, problem: true });
  for (const v of d.states) {
    if (v.verify === 'mismatch') {
      mismatches.push({ seq: v.seq, expected: v.expected, computed: v.computed ?? '' });
      evs.push({ at: v.seq, report: v.seq, problem: true });
    } else if (v.verify === 'error') {
      errors.push({ seq: v.seq, error: v.error ?? 'error' });
      evs.push({ at: v.seq, report: v.seq, problem: true });
    } else if (v.state !== undefined && (v.source === 'full' || v.source === 'checkpoint' || v.source === 'initial' || v.verify === 'ok')) {
      evs.push({ at: v.seq, report: v.seq, problem: false });
    }
  }
  evs.sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : a.problem === b.problem ? 0 : a.problem ? -1 : 1));
  let staleSince: bigint | undefined;
  for (const e of evs) {
    if (e.problem) {
      if (staleSince === undefined) staleSince = e.report;
    } else if (e.at > (staleSince ?? -1n)) staleSince = undefined;
  }
  const lastVersion = d.states[d.states.length - 1];
  const stateUnknown = d.states.length === 0 ? !d.hasStart : lastVersion?.state === undefined && lastVersion?.verify === 'unknown';
  return {
    firstSeq: first,
    lastSeq: last,
    gaps,
    ...(historyStartsAt !== undefined ? { historyStartsAt } : {}),
    mismatches,
    errors,
    ...(staleSince !== undefined ? { staleSince } : {}),
    stateUnknown,
    duplicates: run.duplicates,
    reorders: run.reorders,
    conflicts: run.conflicts,
    ok: gaps.length === 0 && mismatches.length === 0 && errors.length === 0 && staleSince === undefined,
  };
}
