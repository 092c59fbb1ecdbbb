/// <reference lib="webworker" />
// Decode worker: frames in (buffers transferred), plain records out. Each
// job carries its id and connection generation back, so the main thread can
// keep order and drop results of an old connection.
import { decodeFrame } from '../lib/decode';
import type { WorkerRequest, WorkerResponse } from './protocol';

declare const self: DedicatedWorkerGlobalScope;

self.onmessage = (ev: MessageEvent<WorkerRequest>) => {
  const req = ev.data;
  const t0 = performance.now();
  decodeFrame(new Uint8Array(req.buf), req.cursor)
    .then((frame) => {
      const res: WorkerResponse = { id: req.id, gen: req.gen, ok: true, frame, decodeMs: performance.now() - t0 };
      self.postMessage(res);
    })
    .catch((e: unknown) => {
      const err = e as { code?: string; message?: string };
      const res: WorkerResponse = {
        id: req.id,
        gen: req.gen,
        ok: false,
        code: err.code ?? 'DECODE_FAILED',
        message: String(err.message ?? e),
        decodeMs: performance.now() - t0,
      };
      self.postMessage(res);
    });
};
