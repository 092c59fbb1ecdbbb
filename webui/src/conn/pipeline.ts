// The ordered apply pipeline of one client. Frames of the current
// connection are decoded off-thread, in parallel, but applied strictly in
// arrival order, interleaved with the control frames that came between
// them. Rules:
//
//   - commit after apply: a frame's offsets are committed to the cursor book
//     only after its records are in the store;
//   - generation guard: every item carries the connection generation it
//     arrived on; anything from an older generation is dropped unapplied,
//     wherever it is (queued, in the worker, or resolving late);
//   - schema gate: a record with a newer schema_version stops applying and
//     committing for the rest of the connection (banner), until reconnect;
//   - a frame that fails to decode stops the connection (reconnect and
//     resume from the committed cursors); a record that fails again after
//     that is quarantined (shown in diagnostics) so one bad record cannot
//     wedge the client;
//   - the backlog is bounded: past the limits the connection is restarted.
import type { Cursor, DecodedFrame } from '../lib/types';
import { EXPECTED_SCHEMA_VERSION, cursorKey } from '../lib/types';
import type { RunStore } from '../store/store';
import type { Decoder, WorkerResponse } from '../worker/protocol';
import type { CursorBook } from './cursors';
import { ApplyMetrics } from './metrics';

export interface ControlMessage {
  type: string;
  [k: string]: unknown;
}

export interface PipelineDeps {
  decoder: Decoder;
  store: RunStore;
  cursors: CursorBook;
  /** A control frame reached its turn (after every earlier frame was applied). */
  onControl: (msg: ControlMessage, gen: number) => void;
  /** The connection must restart (no commit happened for the failing item). */
  onFatal: (reason: string, gen: number) => void;
  /** Records were applied (progress tracking). */
  onApplied?: (frame: DecodedFrame, gen: number) => void;
  now?: () => number;
  maxQueueFrames?: number;
  maxQueueBytes?: number;
}

interface FrameItem {
  kind: 'frame';
  gen: number;
  recvAt: number;
  bytes: number;
  result?: WorkerResponse;
}

interface ControlItem {
  kind: 'control';
  gen: number;
  recvAt: number;
  msg: ControlMessage;
}

type Item = FrameItem | ControlItem;

export interface SchemaMismatch {
  version: number;
  at: number;
}

export class Pipeline {
  gen = 0;
  private items: Item[] = [];
  private pendingCursor: Cursor | null = null;
  private dead = false;
  private draining = false;
  schemaMismatch: SchemaMismatch | null = null;
  private readonly failures = new Map<string, number>();
  readonly metrics: ApplyMetrics;
  private readonly deps: PipelineDeps;
  private readonly now: () => number;
  lastFrameAt = 0;

  constructor(deps: PipelineDeps) {
    this.deps = deps;
    this.now = deps.now ?? (() => performance.now());
    this.metrics = new ApplyMetrics(60_000, this.now);
  }

  /** Starts a new connection generation: everything older is dropped. */
  reset(gen: number): void {
    this.gen = gen;
    this.items = [];
    this.pendingCursor = null;
    this.dead = false;
    this.schemaMismatch = null;
    this.metrics.queueFrames = 0;
    this.metrics.queueBytes = 0;
  }

  get queueLength(): number {
    return this.items.length;
  }

  private fatal(reason: string, gen: number): void {
    if (this.dead || gen !== this.gen) return;
    this.dead = true;
    this.items = [];
    this.metrics.queueFrames = 0;
    this.metrics.queueBytes = 0;
    this.deps.onFatal(reason, gen);
  }

  /** A text frame arrived on connection gen. */
  text(gen: number, data: string): void {
    if (gen !== this.gen || this.dead) return;
    this.lastFrameAt = this.now();
    let msg: ControlMessage;
    try {
      const parsed: unknown = JSON.parse(data);
      if (!parsed || typeof parsed !== 'object' || typeof (parsed as ControlMessage).type !== 'string') return;
      msg = parsed as ControlMessage;
    } catch {
      return; // not ours to understand
    }
    if (msg.type === 'cursor') {
      // Unbatched mode: a cursor frame precedes each binary frame.
      if (this.pendingCursor) {
        this.fatal('cursor_pairing: two cursor frames in a row', gen);
        return;
      }
      const p = Number(msg.partition);
      const o = String(msg.offset);
      if (!Number.isInteger(p) || !/^-?[0-9]{1,19}$/.test(o)) {
        this.fatal('cursor_pairing: invalid cursor frame', gen);
        return;
      }
      this.pendingCursor = { p, o: BigInt(o) };
      return;
    }
    if (msg.type === 'pong') return; // liveness only
    this.items.push({ kind: 'control', gen, recvAt: this.now(), msg });
    this.drain();
  }

  /**
   * A binary frame arrived on connection gen; buf is handed to the decoder.
   * A Blob (the socket's default binary type) goes to the worker unread, so
   * the main thread never touches the bytes: a frame with a pending cursor
   * frame is one record, any other must be a D6 batch (the worker checks).
   */
  binary(gen: number, buf: ArrayBuffer | Blob): void {
    if (gen !== this.gen || this.dead) return;
    const recvAt = this.now();
    this.lastFrameAt = recvAt;
    const size = buf instanceof Blob ? buf.size : buf.byteLength;
    let cursor: Cursor | null = this.pendingCursor;
    this.pendingCursor = null;
    if (!(buf instanceof Blob)) {
      const first = size > 0 ? new Uint8Array(buf, 0, 1)[0] : undefined;
      if (first !== 0x02 && !cursor) {
        this.fatal('cursor_pairing: binary frame without a cursor', gen);
        return;
      }
      if (first === 0x02 && cursor) {
        this.fatal('cursor_pairing: batch frame after a cursor frame', gen);
        return;
      }
      if (first === 0x02) cursor = null;
    }
    const item: FrameItem = { kind: 'frame', gen, recvAt, bytes: size };
    this.items.push(item);
    this.metrics.queueFrames++;
    this.metrics.queueBytes += size;
    const maxFrames = this.deps.maxQueueFrames ?? 5000;
    const maxBytes = this.deps.maxQueueBytes ?? 128 * 1024 * 1024;
    if (this.metrics.queueFrames > maxFrames || this.metrics.queueBytes > maxBytes) {
      this.fatal('client_backlog: apply queue over its limit', gen);
      return;
    }
    this.deps.decoder.decode(buf, cursor, gen).then(
      (res) => {
        item.result = res;
        this.drain();
      },
      (e: unknown) => {
        item.result = { id: 0, gen, ok: false, code: 'DECODE_FAILED', message: String(e), decodeMs: 0 };
        this.drain();
      },
    );
  }

  /** Applies every ready item at the head, in order. */
  drain(): void {
    if (this.draining) return;
    this.draining = true;
    try {
      while (this.items.length > 0 && !this.dead) {
        const item = this.items[0] as Item;
        if (item.gen !== this.gen) {
          this.items.shift();
          continue;
        }
        if (item.kind === 'control') {
          this.items.shift();
          this.deps.onControl(item.msg, item.gen);
          continue;
        }
        if (!item.result) break; // still decoding: order is kept
        this.items.shift();
        this.metrics.queueFrames--;
        this.metrics.queueBytes -= item.bytes;
        this.applyFrame(item, item.result);
      }
    } finally {
      this.draining = false;
    }
  }

  private applyFrame(item: FrameItem, res: WorkerResponse): void {
    // The generation may have changed while this frame was decoding.
    if (res.gen !== this.gen || item.gen !== this.gen) return;
    if (!res.ok) {
      this.fatal(`decode_failed: ${res.code}: ${res.message}`, item.gen);
      return;
    }
    const f = res.frame;
    if (this.schemaMismatch || f.maxSchemaVersion > EXPECTED_SCHEMA_VERSION) {
      if (!this.schemaMismatch) {
        this.schemaMismatch = { version: f.maxSchemaVersion, at: Date.now() };
        this.deps.store.diag(
          'SCHEMA_VERSION',
          `messages with schema v${f.maxSchemaVersion} (this UI understands v${EXPECTED_SCHEMA_VERSION}): applying paused`,
          '',
        );
      }
      this.metrics.droppedFrames++;
      return; // no apply, no commit
    }
    if (f.errors.length > 0) {
      const fresh = f.errors.filter((e) => !e.cursor || (this.failures.get(cursorKey(e.cursor)) ?? 0) < 1);
      if (fresh.length > 0) {
        for (const e of fresh) if (e.cursor) this.failures.set(cursorKey(e.cursor), 1);
        if (this.failures.size > 10_000) this.failures.clear();
        this.fatal(`decode_failed: ${fresh[0]?.code}: ${fresh[0]?.message}`, item.gen);
        return;
      }
      // Failed again after a reconnect: quarantine, shown in diagnostics.
    }
    this.deps.store.applyLive(f.records, f.errors);
    let maxTs = 0;
    for (const r of f.records) if (r.tsUs > maxTs) maxTs = r.tsUs;
    this.deps.cursors.commit(f.maxOffsets, maxTs);
    this.metrics.applied(item.recvAt, f.records.length, f.kafkaRecords, res.decodeMs);
    this.deps.onApplied?.(f, item.gen);
  }
}
