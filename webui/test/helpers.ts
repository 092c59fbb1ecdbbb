// Test helpers: recorded sessions, synthetic runs built from the real
// protobuf schema, and a decoder whose results the test releases by hand.
import { readFileSync } from 'node:fs';
import { create, toBinary } from '@bufbuild/protobuf';
import {
  DashStreamMessageSchema,
  DiffOperation_OpType,
  DiffOperation_ValueEncoding,
  EventType,
  MessageType,
  type DashStreamMessage,
} from '../src/gen/dashstream_pb';
import { decodeFrame } from '../src/lib/decode';
import { buildBatch, parseBatch, type RawRecord } from '../src/lib/frames';
import type { Cursor } from '../src/lib/types';
import { frameBytes, type Decoder, type WorkerResponse } from '../src/worker/protocol';

export interface RecordedFrame {
  text?: string;
  bin?: Uint8Array;
}

/** Reads a session recorded by scripts/record-frames.mjs. */
export function readSession(path: string): RecordedFrame[] {
  const b = readFileSync(path);
  const out: RecordedFrame[] = [];
  let pos = 0;
  while (pos < b.length) {
    const kind = b[pos];
    const len = b.readUInt32BE(pos + 1);
    const body = new Uint8Array(b.subarray(pos + 5, pos + 5 + len));
    pos += 5 + len;
    if (kind === 0) out.push({ text: Buffer.from(body).toString('utf8') });
    else out.push({ bin: body });
  }
  return out;
}

/** All Kafka records of the binary frames of a session, in order. */
export function sessionRecords(frames: RecordedFrame[]): RawRecord[] {
  const out: RawRecord[] = [];
  for (const f of frames) if (f.bin) out.push(...parseBatch(f.bin));
  return out;
}

export function toArrayBuffer(u: Uint8Array): ArrayBuffer {
  return u.slice().buffer;
}

export function oneRecordFrame(r: RawRecord): ArrayBuffer {
  return toArrayBuffer(buildBatch([r]));
}

const enc = new TextEncoder();
let idCounter = 1;

function header(thread: string, seq: number, type: MessageType, schemaVersion = 1) {
  const id = new Uint8Array(16);
  new DataView(id.buffer).setUint32(12, idCounter++);
  return {
    messageId: id,
    timestampUs: BigInt(1767225600000000 + seq * 1000),
    tenantId: 'default',
    threadId: thread,
    sequence: BigInt(seq),
    type,
    schemaVersion,
  };
}

export function frame(msg: DashStreamMessage): Uint8Array {
  const pb = toBinary(DashStreamMessageSchema, msg);
  const out = new Uint8Array(pb.length + 1);
  out.set(pb, 1);
  return out;
}

export function eventMsg(
  thread: string,
  seq: number,
  type: EventType,
  node = '',
  attrs: Record<string, string | number> = {},
  opts: { schemaVersion?: number; durationUs?: number } = {},
): DashStreamMessage {
  const attributes: Record<string, { value: { case: 'stringValue'; value: string } | { case: 'intValue'; value: bigint } }> = {};
  for (const [k, v] of Object.entries(attrs)) {
    attributes[k] = { value: typeof v === 'string' ? { case: 'stringValue', value: v } : { case: 'intValue', value: BigInt(v) } };
  }
  return create(DashStreamMessageSchema, {
    message: {
      case: 'event',
      value: {
        header: header(thread, seq, MessageType.EVENT, opts.schemaVersion),
        eventType: type,
        nodeId: node,
        attributes,
        durationUs: BigInt(opts.durationUs ?? 0),
      },
    },
  });
}

export function hexToBytes(h: string): Uint8Array {
  const out = new Uint8Array(h.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(h.slice(i * 2, i * 2 + 2), 16);
  return out;
}

export function stateDiffMsg(
  thread: string,
  seq: number,
  hash: string,
  body: { full?: string; ops?: { op: DiffOperation_OpType; path: string; value?: string }[] },
): DashStreamMessage {
  return create(DashStreamMessageSchema, {
    message: {
      case: 'stateDiff',
      value: {
        header: header(thread, seq, MessageType.STATE_DIFF),
        stateHash: hexToBytes(hash),
        fullState: body.full ? enc.encode(body.full) : new Uint8Array(),
        operations: (body.ops ?? []).map((o) => ({
          op: o.op,
          path: o.path,
          value: o.value !== undefined ? enc.encode(o.value) : new Uint8Array(),
          encoding: DiffOperation_ValueEncoding.JSON,
        })),
      },
    },
  });
}

// The wire-protocol §6 example run (research_pipeline, thread t-42).
export const S = {
  S0: '{"draft":null,"notes":[],"plan":null,"query":"What is DashStream?","step":0}',
  S1: '{"draft":null,"notes":[],"plan":"search docs, then summarize","query":"What is DashStream?","step":1}',
  S2: '{"draft":null,"notes":["proto3 envelope","zstd framing"],"plan":"search docs, then summarize","query":"What is DashStream?","step":2}',
  S3: '{"draft":"DashStream is a protobuf telemetry protocol.","notes":["proto3 envelope","zstd framing"],"plan":"search docs, then summarize","query":"What is DashStream?","step":3}',
};
export const H = {
  S0: '73acbbb1d4be22b4477e16473b85cc33fe42d678e6c2fc5c2425f16a2b3f0af7',
  S1: '33ddaac3c0985c41c26abed709b4d49a61a1dda368282b7e5ac82586f29d4504',
  S2: 'a8b67d24c4d83432ba25fd07d447a4ac7e2949f9e6e3e17170bd1c8cacc752b0',
  S3: '8571668ddb478eceba7ea7dd7f0dc2bc06cc3bb14f239886c8ad9208c3eb6fbb',
};

const SCHEMA = JSON.stringify({
  name: 'research_pipeline',
  version: '1.0.0',
  nodes: ['planner', 'researcher', 'writer'].map((name) => ({ name, description: name, node_type: 'llm' })),
  edges: [
    { from: 'planner', to: 'researcher', edge_type: 'direct' },
    { from: 'researcher', to: 'writer', edge_type: 'direct' },
    { from: 'writer', to: '__end__', edge_type: 'direct' },
  ],
  entry_point: 'planner',
});

/** The 15 messages of the §6 example run, framed (0x00). */
export function exampleRun(thread = 't-42'): Uint8Array[] {
  const m: DashStreamMessage[] = [
    eventMsg(thread, 1, EventType.GRAPH_START, '', {
      graph_name: 'research_pipeline',
      graph_schema_json: SCHEMA,
      schema_id: '0123456789abcdef',
      graph_entry_point: 'planner',
      initial_state_json: S.S0,
    }),
    eventMsg(thread, 2, EventType.NODE_START, 'planner'),
    stateDiffMsg(thread, 3, H.S1, { full: S.S1 }),
    eventMsg(thread, 4, EventType.NODE_END, 'planner', {}, { durationUs: 120000 }),
    eventMsg(thread, 5, EventType.EDGE_TRAVERSAL, 'planner'),
    eventMsg(thread, 6, EventType.NODE_START, 'researcher'),
    stateDiffMsg(thread, 7, H.S2, { full: S.S2 }),
    eventMsg(thread, 8, EventType.NODE_END, 'researcher', {}, { durationUs: 80000 }),
    eventMsg(thread, 9, EventType.EDGE_TRAVERSAL, 'researcher'),
    eventMsg(thread, 10, EventType.NODE_START, 'writer'),
    stateDiffMsg(thread, 11, H.S3, {
      ops: [
        { op: DiffOperation_OpType.REPLACE, path: '/draft', value: '"DashStream is a protobuf telemetry protocol."' },
        { op: DiffOperation_OpType.REPLACE, path: '/step', value: '3' },
      ],
    }),
    eventMsg(thread, 12, EventType.NODE_END, 'writer', {}, { durationUs: 50000 }),
    eventMsg(thread, 13, EventType.EDGE_TRAVERSAL, 'writer'),
    stateDiffMsg(thread, 14, H.S3, {}),
    eventMsg(thread, 15, EventType.GRAPH_END, '', {}, { durationUs: 300000 }),
  ];
  return m.map(frame);
}

/** Wraps framed values as Kafka records on partition p from offset base. */
export function asRecords(values: Uint8Array[], p = 0, base = 100): RawRecord[] {
  return values.map((payload, i) => ({ partition: p, offset: BigInt(base + i), payload }));
}

/** A decoder whose results are released by the test, in any order. */
export class ManualDecoder implements Decoder {
  readonly jobs: { buf: ArrayBuffer | Blob; cursor: Cursor | null; gen: number; resolve: () => void; done: boolean }[] = [];
  decode(buf: ArrayBuffer | Blob, cursor: Cursor | null, gen: number): Promise<WorkerResponse> {
    return new Promise((resolveOuter) => {
      const job = {
        buf,
        cursor,
        gen,
        done: false,
        resolve: () => {
          job.done = true;
          frameBytes(buf).then((b) => decodeFrame(b, cursor)).then(
            (frame) => resolveOuter({ id: 0, gen, ok: true, frame, decodeMs: 0 }),
            (e: Error & { code?: string }) => resolveOuter({ id: 0, gen, ok: false, code: e.code ?? 'X', message: e.message, decodeMs: 0 }),
          );
        },
      };
      this.jobs.push(job);
    });
  }
  dispose(): void {}
}

export class MemoryStorage {
  readonly map = new Map<string, string>();
  getItem(k: string): string | null {
    return this.map.get(k) ?? null;
  }
  setItem(k: string, v: string): void {
    this.map.set(k, v);
  }
  removeItem(k: string): void {
    this.map.delete(k);
  }
}

export const tick = () => new Promise<void>((r) => setTimeout(r, 0));
export async function settle(n = 5): Promise<void> {
  for (let i = 0; i < n; i++) await tick();
}

/**
 * Reads a corpus written by `dashstream produce --out` (magic "DSCORP1\n",
 * then uvarint partition, key, value per record); offsets are assigned in
 * order per partition.
 */
export function readCorpus(path: string): RawRecord[] {
  const b = new Uint8Array(readFileSync(path));
  const magic = Buffer.from(b.subarray(0, 8)).toString('latin1');
  if (magic !== 'DSCORP1\n') throw new Error('not a corpus file');
  let pos = 8;
  const uv = () => {
    let v = 0;
    let mul = 1;
    for (;;) {
      const x = b[pos++] as number;
      v += (x & 0x7f) * mul;
      if (x < 0x80) return v;
      mul *= 128;
    }
  };
  const next = new Map<number, number>();
  const out: RawRecord[] = [];
  while (pos < b.length) {
    const partition = uv();
    const klen = uv();
    pos += klen;
    const vlen = uv();
    const payload = b.subarray(pos, pos + vlen);
    pos += vlen;
    const o = next.get(partition) ?? 0;
    next.set(partition, o + 1);
    out.push({ partition, offset: BigInt(o), payload });
  }
  return out;
}
