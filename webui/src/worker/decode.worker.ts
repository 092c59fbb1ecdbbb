/// <reference lib="webworker" />
// Decode worker: frames in (buffers transferred, several per message), plain
// records out (one message per batch). Each result carries its request id
// and connection generation back, so the main thread keeps order and drops
// results of an old connection.
import { decodeFrame } from '../lib/decode';
import { frameBytes, type WorkerBatch, type WorkerRequest, type WorkerResponse } from './protocol';

declare const self: DedicatedWorkerGlobalScope;

async function one(req: WorkerRequest): Promise<WorkerResponse> {
  const t0 = performance.now();
  try {
    const frame = await decodeFrame(await frameBytes(req.buf), req.cursor);
    return { id: req.id, gen: req.gen, ok: true, frame, decodeMs: performance.now() - t0 };
  } catch (e) {
    const err = e as { code?: string; message?: string };
    return { id: req.id, gen: req.gen, ok: false, code: err.code ?? 'DECODE_FAILED', message: String(err.message ?? e), decodeMs: performance.now() - t0 };
  }
}

self.onmessage = (ev: MessageEvent<WorkerBatch>) => {
  void Promise.all(ev.data.reqs.map(one)).then((res) => self.postMessage(res));
};
