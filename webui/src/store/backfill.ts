// Backfill: when a run is opened, its whole retained history is read from
// /api/runs/{thread}/records (D7 pages, D6 body) and merged into the run,
// so the graph and state are complete even for a run that started before
// the page was opened. It never touches the live connection's cursors.
//
// Handover to the live stream: a first visit resumes from "latest", so a
// record committed after the backfill's last page but before the live
// stream's starting point would reach neither. The backfill therefore ends
// only with a page fetched after the connection went live (liveSince);
// until then it keeps asking for what follows its last page.
import type { RecordsPage } from '../conn/http';
import { fetchRecordsPage } from '../conn/http';
import type { Decoder } from '../worker/protocol';
import type { RunStore } from './store';

export const BACKFILL_PAGE = 2000;

export type PageFetcher = (thread: string, after: string, limit: number, signal: AbortSignal) => Promise<RecordsPage>;

export interface BackfillOptions {
  /** When the live stream (re)started delivering (performance.now()); undefined while not live. */
  liveSince?: () => number | undefined;
  /** Pause between tail checks while the connection is not live yet. */
  tailPollMs?: number;
  now?: () => number;
}

export class Backfiller {
  private readonly active = new Map<string, AbortController>();
  private readonly store: RunStore;
  private readonly decoder: () => Decoder;
  private readonly fetchPage: PageFetcher;
  private readonly opts: BackfillOptions;

  constructor(store: RunStore, decoder: () => Decoder, fetchPage: PageFetcher = fetchRecordsPage, opts: BackfillOptions = {}) {
    this.store = store;
    this.decoder = decoder;
    this.fetchPage = fetchPage;
    this.opts = opts;
  }

  /** Whether a page fetched at t covers everything up to the live stream's start. */
  private coversLive(t: number): boolean {
    if (!this.opts.liveSince) return true;
    const live = this.opts.liveSince();
    return live !== undefined && live <= t;
  }

  isLoading(thread: string): boolean {
    return this.active.has(thread);
  }

  /** Loads the run's history unless it is loaded or loading. */
  ensure(thread: string, opts: { force?: boolean; expected?: number } = {}): void {
    const run = this.store.ensure(thread);
    if (this.active.has(thread)) return;
    if (!opts.force && run.backfill.state === 'done') return;
    const ctl = new AbortController();
    this.active.set(thread, ctl);
    run.backfill = { state: 'loading', pages: 0, records: 0, ...(opts.expected !== undefined ? { expected: opts.expected } : {}) };
    this.store.notify();
    void this.load(thread, ctl).finally(() => {
      if (this.active.get(thread) === ctl) this.active.delete(thread);
    });
  }

  stop(thread: string): void {
    const ctl = this.active.get(thread);
    if (ctl) {
      ctl.abort();
      this.active.delete(thread);
      const run = this.store.get(thread);
      if (run && run.backfill.state === 'loading') run.backfill = { ...run.backfill, state: 'idle' };
    }
  }

  private async load(thread: string, ctl: AbortController): Promise<void> {
    const run = this.store.ensure(thread);
    let after = '';
    try {
      const now = this.opts.now ?? (() => performance.now());
      for (let page = 0; page < 100_000; page++) {
        const fetchedAt = now();
        const res = await this.fetchPage(thread, after, BACKFILL_PAGE, ctl.signal);
        if (ctl.signal.aborted || this.store.get(thread) !== run) return;
        const decoded = await this.decoder().decode(res.body, null, -1);
        if (ctl.signal.aborted || this.store.get(thread) !== run) return;
        if (!decoded.ok) throw new Error(`${decoded.code}: ${decoded.message}`);
        this.store.applyBackfill(thread, decoded.frame.records);
        for (const e of decoded.frame.errors) {
          this.store.diag(e.code, `backfill of ${thread}: ${e.message}`, e.cursor ? `p${e.cursor.p}@${e.cursor.o}` : '');
        }
        run.backfill.pages++;
        if (res.next) after = res.next;
        if (res.more && res.next) continue;
        if (this.coversLive(fetchedAt)) break;
        // The live stream has not started yet: ask again for what follows.
        await new Promise<void>((r) => setTimeout(r, this.opts.tailPollMs ?? 300));
        if (ctl.signal.aborted) return;
      }
      run.backfill = { ...run.backfill, state: 'done' };
    } catch (e) {
      if (ctl.signal.aborted) return;
      run.backfill = { ...run.backfill, state: 'error', error: (e as Error).message };
    }
    this.store.notify();
  }
}
