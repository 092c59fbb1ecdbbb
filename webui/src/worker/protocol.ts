// Messages between the main thread and the decode worker, and the decoder
// interface the pipeline uses (a worker in the browser, a direct call in
// tests).
import type { Cursor, DecodedFrame } from '../lib/types';
import { decodeFrame } from '../lib/decode';

export interface WorkerRequest {
  id: number;
  gen: number;
  buf: ArrayBuffer | Blob;
  cursor: Cursor | null;
}

/** The bytes of a frame, read from a Blob when needed. */
export async function frameBytes(buf: ArrayBuffer | Blob): Promise<Uint8Array> {
  return new Uint8Array(buf instanceof ArrayBuffer ? buf : await buf.arrayBuffer());
}

/** Frames that arrived together travel to and from the worker in one message. */
export interface WorkerBatch {
  reqs: WorkerRequest[];
}

export type WorkerResponse =
  | { id: number; gen: number; ok: true; frame: DecodedFrame; decodeMs: number }
  | { id: number; gen: number; ok: false; code: string; message: string; decodeMs: number };

export interface Decoder {
  /** Decodes buf (ownership passes to the decoder). */
  decode(buf: ArrayBuffer | Blob, cursor: Cursor | null, gen: number): Promise<WorkerResponse>;
  dispose(): void;
}

/** Decodes on the calling thread (tests, and the fallback without workers). */
export class InlineDecoder implements Decoder {
  private id = 0;
  async decode(buf: ArrayBuffer | Blob, cursor: Cursor | null, gen: number): Promise<WorkerResponse> {
    const id = ++this.id;
    const t0 = performance.now();
    try {
      const frame = await decodeFrame(await frameBytes(buf), cursor);
      return { id, gen, ok: true, frame, decodeMs: performance.now() - t0 };
    } catch (e) {
      const err = e as { code?: string; message?: string };
      return { id, gen, ok: false, code: err.code ?? 'DECODE_FAILED', message: String(err.message ?? e), decodeMs: 0 };
    }
  }
  dispose(): void {}
}

/**
 * Decodes in a dedicated worker; results are matched to requests by id.
 * Frames that arrive in one burst are posted together (one message per
 * task, not per frame): per-message overhead is what a busy tab pays for.
 */
export class WorkerDecoder implements Decoder {
  private readonly worker: Worker;
  private id = 0;
  private readonly waiting = new Map<number, (r: WorkerResponse) => void>();
  private queued: WorkerRequest[] = [];
  private scheduled = false;

  constructor(worker: Worker) {
    this.worker = worker;
    worker.onmessage = (ev: MessageEvent<WorkerResponse[]>) => {
      for (const r of ev.data) {
        const cb = this.waiting.get(r.id);
        if (cb) {
          this.waiting.delete(r.id);
          cb(r);
        }
      }
    };
    worker.onerror = (ev) => {
      // A crashed worker fails every pending job; the pipeline reconnects.
      for (const [id, cb] of this.waiting) {
        cb({ id, gen: -1, ok: false, code: 'WORKER_ERROR', message: ev.message || 'decode worker error', decodeMs: 0 });
      }
      this.waiting.clear();
    };
  }

  decode(buf: ArrayBuffer | Blob, cursor: Cursor | null, gen: number): Promise<WorkerResponse> {
    const id = ++this.id;
    return new Promise((resolve) => {
      this.waiting.set(id, resolve);
      this.queued.push({ id, gen, buf, cursor });
      if (this.queued.length >= 64) this.flush();
      else if (!this.scheduled) {
        this.scheduled = true;
        setTimeout(() => this.flush(), 0);
      }
    });
  }

  private flush(): void {
    this.scheduled = false;
    const reqs = this.queued;
    if (reqs.length === 0) return;
    this.queued = [];
    const batch: WorkerBatch = { reqs };
    this.worker.postMessage(
      batch,
      reqs.map((r) => r.buf).filter((b): b is ArrayBuffer => b instanceof ArrayBuffer),
    );
  }

  pending(): number {
    return this.waiting.size;
  }

  dispose(): void {
    this.worker.terminate();
    this.waiting.clear();
  }
}
