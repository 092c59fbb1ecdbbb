// Hash verification of state versions, off the apply path. Each run's new
// versions are checked in order within a time budget per tick; when a run
// falls behind, older versions are deferred (checked when someone looks at
// them) so the newest state of every run is always checked. Canonical text
// is cached per shared subtree (see canonical.ts), so a patch-derived
// version costs about the size of what changed plus one copy for hashing.
import { canonicalJson, sha256Hex } from '../lib/canonical';
import type { Deriver, StateVersion } from './derive';
import type { RunModel } from './run';

const enc = new TextEncoder();

export interface VerifierOptions {
  /** Synchronous canonicalisation budget per tick (ms). */
  budgetMs?: number;
  intervalMs?: number;
  /** Versions per run left pending before older ones are deferred. */
  maxBacklog?: number;
  onResult?: (run: RunModel, v: StateVersion) => void;
  /** Runs someone is looking at: every version is checked, none deferred. */
  isPinned?: (run: RunModel) => boolean;
  /**
   * Check only runs someone is looking at (the app): other runs are
   * checked when opened, so a busy tab spends nothing on them.
   */
  onlyPinned?: boolean;
  now?: () => number;
}

export class Verifier {
  private readonly dirty = new Set<RunModel>();
  private readonly scan = new WeakMap<RunModel, { deriver: Deriver; next: number }>();
  private readonly inflight = new WeakSet<StateVersion>();
  private timer: ReturnType<typeof setTimeout> | undefined;
  private readonly opts: Required<Omit<VerifierOptions, 'onResult' | 'isPinned'>> & Pick<VerifierOptions, 'onResult' | 'isPinned'>;
  verified = 0;
  mismatches = 0;
  deferred = 0;
  private outstanding = 0;
  private idleWaiters: (() => void)[] = [];

  constructor(opts: VerifierOptions = {}) {
    this.opts = {
      budgetMs: opts.budgetMs ?? 8,
      intervalMs: opts.intervalMs ?? 60,
      maxBacklog: opts.maxBacklog ?? 6,
      onlyPinned: opts.onlyPinned ?? false,
      now: opts.now ?? (() => performance.now()),
      ...(opts.onResult ? { onResult: opts.onResult } : {}),
      ...(opts.isPinned ? { isPinned: opts.isPinned } : {}),
    };
  }

  /** A run got records: check its new versions soon. */
  touch(run: RunModel): void {
    if (this.opts.onlyPinned && !this.opts.isPinned?.(run)) return;
    this.dirty.add(run);
    this.schedule();
  }

  /**
   * Ticks run when the main thread is idle (requestIdleCallback, at most
   * about a second late), so checking hashes never delays applying records.
   */
  private schedule(): void {
    if (this.timer !== undefined) return;
    this.timer = setTimeout(() => {
      const ric = (globalThis as { requestIdleCallback?: (cb: () => void, o: { timeout: number }) => number }).requestIdleCallback;
      if (ric) ric(() => this.tick(), { timeout: 1000 });
      else this.tick();
    }, this.opts.intervalMs);
  }

  /** A run is being looked at: its deferred versions are checked too. */
  promote(run: RunModel): void {
    const d = run.derive();
    for (const v of d.states) if (v.verify === 'deferred') v.verify = 'pending';
    this.scan.delete(run);
    this.touch(run);
  }

  forget(run: RunModel): void {
    this.dirty.delete(run);
  }

  /** Runs one budgeted pass (also called by the timer). */
  tick(): void {
    this.timer = undefined;
    const t0 = this.opts.now();
    for (const run of [...this.dirty]) {
      if (this.opts.now() - t0 > this.opts.budgetMs) break;
      const d = run.derive();
      let s = this.scan.get(run);
      if (!s || s.deriver !== d) {
        s = { deriver: d, next: 0 };
        this.scan.set(run, s);
      }
      const pendingIdx: number[] = [];
      for (let i = s.next; i < d.states.length; i++) {
        const v = d.states[i] as StateVersion;
        if (v.verify === 'pending') pendingIdx.push(i);
      }
      // Under load keep only the newest few; the rest wait until viewed.
      if (pendingIdx.length > this.opts.maxBacklog && !this.opts.isPinned?.(run)) {
        for (const i of pendingIdx.slice(0, pendingIdx.length - this.opts.maxBacklog)) {
          (d.states[i] as StateVersion).verify = 'deferred';
          this.deferred++;
        }
      }
      let done = true;
      for (let i = s.next; i < d.states.length; i++) {
        const v = d.states[i] as StateVersion;
        if (v.verify === 'pending') {
          if (this.opts.now() - t0 > this.opts.budgetMs) {
            done = false;
            break;
          }
          this.start(run, v);
        }
        s.next = i + 1;
      }
      if (done) this.dirty.delete(run);
    }
    if (this.dirty.size > 0) this.schedule();
    if (this.dirty.size === 0 && this.outstanding === 0) this.wakeIdle();
  }

  /** Verifies v now (a deferred or pending version someone is looking at). */
  verifyNow(run: RunModel, v: StateVersion): Promise<void> {
    if (v.verify === 'deferred') v.verify = 'pending';
    return this.start(run, v);
  }

  private start(run: RunModel, v: StateVersion): Promise<void> {
    if (v.verify !== 'pending' || this.inflight.has(v)) return Promise.resolve();
    if (v.state === undefined) {
      v.verify = 'unknown';
      return Promise.resolve();
    }
    if (v.rawHash && v.rawHash === v.expected) {
      // The full state's bytes are what the producer hashed.
      this.finish(run, v, v.rawHash);
      return Promise.resolve();
    }
    this.inflight.add(v);
    this.outstanding++;
    let bytes: Uint8Array;
    try {
      bytes = enc.encode(canonicalJson(v.state, { cache: true }));
    } catch (e) {
      this.outstanding--;
      this.inflight.delete(v);
      v.verify = 'error';
      v.error = `cannot canonicalise state: ${(e as Error).message}`;
      run.verifyVersion++;
      this.opts.onResult?.(run, v);
      return Promise.resolve();
    }
    return sha256Hex(bytes).then((h) => {
      this.outstanding--;
      this.inflight.delete(v);
      this.finish(run, v, h);
      if (this.dirty.size === 0 && this.outstanding === 0) this.wakeIdle();
    });
  }

  private finish(run: RunModel, v: StateVersion, computed: string): void {
    v.computed = computed;
    v.verify = computed === v.expected ? 'ok' : 'mismatch';
    this.verified++;
    if (v.verify === 'mismatch') this.mismatches++;
    run.verifyVersion++;
    this.opts.onResult?.(run, v);
  }

  private wakeIdle(): void {
    const w = this.idleWaiters;
    this.idleWaiters = [];
    for (const f of w) f();
  }

  /** Resolves once every touched run is verified (tests). */
  async drain(): Promise<void> {
    for (let i = 0; i < 1000; i++) {
      this.tick();
      if (this.dirty.size === 0 && this.outstanding === 0) return;
      await new Promise<void>((r) => setTimeout(r, 1));
    }
  }

  pendingRuns(): number {
    return this.dirty.size;
  }

  dispose(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.dirty.clear();
  }
}
