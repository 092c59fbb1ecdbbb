// Messages between the main thread and the decode worker, and the decoder
// interface the pipeline uses (a worker in the browser, a direct call in
// tests).
import type { Cursor, DecodedFrame } from '../lib/types';
import { decodeFrame } from '../lib/decode';

export interface WorkerRequest {
  id: number;
  gen: number;
  buf: ArrayBuffer;
  cursor: Cursor | null;
}

export type WorkerResponse =
  | { id: number; gen: number; ok: true; frame: DecodedFrame; decodeMs: number }
  | { id: number; gen: number; ok: false; code: string; message: string; decodeMs: number };

export interface Decoder {
  /** Decodes buf (ownership passes to the decoder). */
  decode(buf: ArrayBuffer, cursor: Cursor | null, gen: number): Promise<WorkerResponse>;
  dispose(): void;
}

/** Decodes on the calling thread (tests, and the fallback without workers). */
export class InlineDecoder implements Decoder {
  private id = 0;
  async decode(buf: ArrayBuffer, cursor: Cursor | null, gen: number): Promise<WorkerResponse> {
    const id = ++this.id;
    const t0 = performance.now();
    try {
      const frame = await decodeFrame(new Uint8Array(buf), cursor);
      return { id, gen, ok: true, frame, decodeMs: performance.now() - t0 };
    } catch (e) {
      const err = e as { code?: string; message?: string };
      return { id, gen, ok: false, code: err.code ?? 'DECODE_FAILED', message: String(err.message ?? e), decodeMs: 0 };
    }
  }
  dispose(): void {}
}

/** Decodes in a dedicated worker; results are matched to requests by id. */
export class WorkerDecoder implements Decoder {
  private readonly worker: Worker;
  private id = 0;
  private readonly waiting = new Map<number, (r: WorkerResponse) => void>();

  constructor(worker: Worker) {
    this.worker = worker;
    worker.onmessage = (ev: MessageEvent<WorkerResponse>) => {
      const cb = this.waiting.get(ev.data.id);
      if (cb) {
        this.waiting.delete(ev.data.id);
        cb(ev.data);
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

  decode(buf: ArrayBuffer, cursor: Cursor | null, gen: number): Promise<WorkerResponse> {
    const id = ++this.id;
    return new Promise((resolve) => {
      this.waiting.set(id, resolve);
      const req: WorkerRequest = { id, gen, buf, cursor };
      this.worker.postMessage(req, [buf]);
    });
  }

  pending(): number {
    return this.waiting.size;
  }

  dispose(): void {
    this.worker.terminate();
    this.waiting.clear();
  }
}
