// Decoding of Kafka record values (framing byte, guarded zstd, protobuf)
// into plain records for the store. Runs in the decode worker; pure and
// testable in node.
import { fromBinary } from '@bufbuild/protobuf';
import {
  DashStreamMessageSchema,
  DiffOperation_OpType,
  DiffOperation_ValueEncoding,
  type AttributeValue,
  type Event,
  type Header,
} from '../gen/dashstream_pb';
import { sha256Hex, toHex } from './canonical';
import { parseBatch, BATCH_FRAME_TYPE, type RawRecord } from './frames';
import { decodeUtf8, parseJson, parseJsonBytes, setOwn, type JsonObject, type JsonValue } from './json';
import type { PatchOp, PatchOpName } from './patch';
import type {
  Cursor,
  DecodedFrame,
  EventRec,
  GraphSchema,
  Rec,
  RecordError,
  StateRec,
} from './types';
import { DecodeError, hasZstdMagic, MAX_DECOMPRESSED_BYTES, zstdDecompressGuarded } from './zstd';

/** Largest accepted record value (the server's WEBSOCKET_MAX_PAYLOAD_BYTES + framing byte). */
export const MAX_RECORD_BYTES = MAX_DECOMPRESSED_BYTES + 1;
/** Raw JSON of tool arguments/results kept per record. */
const MAX_TOOL_JSON = 64 * 1024;
const MAX_ATTR_STRING = 16 * 1024;
const MAX_ERROR_TEXT = 4000;

/** Removes the framing byte and decompresses: the protobuf bytes of one record value. */
export function unframe(value: Uint8Array): Uint8Array {
  if (value.length === 0) throw new DecodeError('EMPTY', 'empty record value');
  if (value.length > MAX_RECORD_BYTES) {
    throw new DecodeError('PAYLOAD_TOO_LARGE', `record value of ${value.length} bytes exceeds ${MAX_RECORD_BYTES}`);
  }
  const b0 = value[0];
  if (b0 === 0x00) return value.subarray(1);
  if (b0 === 0x01) return zstdDecompressGuarded(value.subarray(1));
  if (hasZstdMagic(value)) return zstdDecompressGuarded(value); // legacy bare zstd
  return value; // legacy unframed protobuf
}

const OP_NAMES: Record<number, PatchOpName> = {
  [DiffOperation_OpType.ADD]: 'add',
  [DiffOperation_OpType.REMOVE]: 'remove',
  [DiffOperation_OpType.REPLACE]: 'replace',
  [DiffOperation_OpType.MOVE]: 'move',
  [DiffOperation_OpType.COPY]: 'copy',
  [DiffOperation_OpType.TEST]: 'test',
};

function bigToNumber(v: bigint): number {
  return Number(v); // timestamps and durations: exact far beyond any real value
}

function attrToJson(a: AttributeValue | undefined, depth = 0): JsonValue {
  if (!a || depth > 32) return null;
  const v = a.value;
  switch (v.case) {
    case 'stringValue':
      return v.value.length > MAX_ATTR_STRING ? v.value.slice(0, MAX_ATTR_STRING) + '…' : v.value;
    case 'intValue':
      return v.value >= BigInt(-Number.MAX_SAFE_INTEGER) && v.value <= BigInt(Number.MAX_SAFE_INTEGER)
        ? Number(v.value)
        : v.value;
    case 'floatValue':
      return v.value;
    case 'boolValue':
      return v.value;
    case 'bytesValue':
      return `bytes(${v.value.length}):${toHex(v.value.subarray(0, 32))}`;
    case 'arrayValue':
      return v.value.values.map((x) => attrToJson(x, depth + 1));
    case 'mapValue': {
      const o: JsonObject = {};
      for (const [k, x] of Object.entries(v.value.values)) setOwn(o, k, attrToJson(x, depth + 1));
      return o;
    }
    default:
      return null;
  }
}

interface Ctx {
  cursor: Cursor | null;
  inBatch: boolean;
  pending: Promise<void>[];
}

function base(h: Header | undefined, ctx: Ctx, size: number, fallback?: Header) {
  const thread = h?.threadId || fallback?.threadId || '';
  const ts = h && h.timestampUs !== 0n ? h.timestampUs : (fallback?.timestampUs ?? 0n);
  return {
    cursor: ctx.cursor,
    thread,
    seq: h?.sequence ?? 0n,
    tsUs: bigToNumber(ts),
    msgId: h ? toHex(h.messageId) : '',
    schemaVersion: Math.max(1, h?.schemaVersion ?? 1, fallback?.schemaVersion ?? 1),
    size,
    inBatch: ctx.inBatch,
  };
}

function stringAttr(ev: Event, key: string): string | undefined {
  const a = ev.attributes[key];
  return a && a.value.case === 'stringValue' ? a.value.value : undefined;
}

function decodeEvent(ev: Event, ctx: Ctx, size: number, batchHeader?: Header): EventRec {
  const attrs: JsonObject = {};
  for (const [k, a] of Object.entries(ev.attributes)) {
    // The big GRAPH_START attributes are parsed below, not kept as text.
    if (k === 'graph_schema_json' || k === 'initial_state_json' || k === 'graph_manifest') continue;
    setOwn(attrs, k, attrToJson(a));
  }
  const rec: EventRec = {
    ...base(ev.header, ctx, size, batchHeader),
    kind: 'event',
    type: ev.eventType,
    node: ev.nodeId,
    attrs,
    durUs: bigToNumber(ev.durationUs),
  };
  const errs: string[] = [];
  const schemaText = stringAttr(ev, 'graph_schema_json');
  if (schemaText !== undefined) {
    try {
      const s = JSON.parse(schemaText) as Partial<GraphSchema>;
      if (!Array.isArray(s.nodes) || !Array.isArray(s.edges)) throw new Error('nodes/edges missing');
      rec.schema = s as GraphSchema;
    } catch (e) {
      errs.push(`graph_schema_json: ${(e as Error).message}`);
    }
  }
  const initText = stringAttr(ev, 'initial_state_json');
  if (initText !== undefined) {
    try {
      rec.initialState = parseJson(initText);
      const bytes = new TextEncoder().encode(initText);
      ctx.pending.push(
        sha256Hex(bytes).then((h) => {
          rec.initialRawHash = h;
        }),
      );
    } catch (e) {
      errs.push(`initial_state_json: ${(e as Error).message}`);
    }
  }
  if (errs.length) rec.attrError = errs.join('; ');
  return rec;
}

function decodeOpValue(value: Uint8Array, encoding: number): JsonValue | undefined {
  if (value.length === 0) return undefined;
  switch (encoding) {
    case DiffOperation_ValueEncoding.JSON:
      return parseJsonBytes(value);
    case DiffOperation_ValueEncoding.RAW:
      return decodeUtf8(value);
    default:
      throw new Error(`unsupported value encoding ${encoding}`);
  }
}

function toolJson(b: Uint8Array): string {
  if (b.length === 0) return '';
  const s = new TextDecoder().decode(b.length > MAX_TOOL_JSON ? b.subarray(0, MAX_TOOL_JSON) : b);
  return b.length > MAX_TOOL_JSON ? s + '…' : s;
}

function clip(s: string, n = MAX_ERROR_TEXT): string {
  return s.length > n ? s.slice(0, n) + '…' : s;
}

/** Decodes one record value into out; throws DecodeError for undecodable values. */
export function decodeValue(value: Uint8Array, cursor: Cursor | null, out: Rec[], pending: Promise<void>[]): void {
  const pbBytes = unframe(value);
  let msg;
  try {
    msg = fromBinary(DashStreamMessageSchema, pbBytes);
  } catch (e) {
    throw new DecodeError('INVALID_PROTOBUF', `protobuf: ${(e as Error).message}`);
  }
  const ctx: Ctx = { cursor, inBatch: false, pending };
  const size = value.length;
  const m = msg.message;
  switch (m.case) {
    case 'event':
      out.push(decodeEvent(m.value, ctx, size));
      return;
    case 'eventBatch': {
      const bctx: Ctx = { ...ctx, inBatch: true };
      const per = Math.max(1, Math.floor(size / Math.max(1, m.value.events.length)));
      for (const ev of m.value.events) out.push(decodeEvent(ev, bctx, per, m.value.header));
      return;
    }
    case 'stateDiff': {
      const sd = m.value;
      const rec: StateRec = {
        ...base(sd.header, ctx, size),
        kind: 'state',
        hash: toHex(sd.stateHash),
        baseCheckpoint: toHex(sd.baseCheckpointId),
      };
      try {
        if (sd.fullState.length > 0) {
          const raw = sd.fullState;
          rec.full = parseJsonBytes(raw);
          pending.push(
            sha256Hex(raw).then((h) => {
              rec.fullRawHash = h;
            }),
          );
        } else if (sd.operations.length > 0) {
          rec.ops = sd.operations.map((o) => {
            const op: PatchOp = { op: OP_NAMES[o.op] ?? 'test', path: o.path };
            if (OP_NAMES[o.op] === undefined) throw new Error(`unknown op type ${o.op}`);
            if (o.from) op.from = o.from;
            const v = decodeOpValue(o.value, o.encoding);
            if (v !== undefined) op.value = v;
            return op;
          });
        }
      } catch (e) {
        rec.error = clip(`state diff undecodable: ${(e as Error).message}`);
        delete rec.full;
        delete rec.ops;
      }
      out.push(rec);
      return;
    }
    case 'tokenChunk': {
      const t = m.value;
      out.push({
        ...base(t.header, ctx, size),
        kind: 'token',
        requestId: t.requestId,
        text: t.text,
        chunkIndex: t.chunkIndex,
        isFinal: t.isFinal,
        finishReason: t.finishReason,
        model: t.model,
        nTokens: t.tokenIds.length,
        ...(t.stats
          ? { stats: { prompt: t.stats.promptTokens, completion: t.stats.completionTokens, total: t.stats.totalTokens } }
          : {}),
      });
      return;
    }
    case 'toolExecution': {
      const t = m.value;
      out.push({
        ...base(t.header, ctx, size),
        kind: 'tool',
        callId: t.callId,
        tool: t.toolName,
        stage: t.stage,
        args: toolJson(t.arguments),
        result: toolJson(t.result),
        error: clip(t.error || t.errorDetails?.message || ''),
        durUs: bigToNumber(t.durationUs),
        retries: t.retryCount,
      });
      return;
    }
    case 'checkpoint': {
      const c = m.value;
      const rec: Rec = {
        ...base(c.header, ctx, size),
        kind: 'checkpoint',
        id: toHex(c.checkpointId),
        checksumOk: null,
      };
      try {
        let raw = c.state;
        const ci = c.compressionInfo;
        if (ci && ci.type === 1 /* ZSTD */) raw = zstdDecompressGuarded(raw);
        else if (hasZstdMagic(raw)) raw = zstdDecompressGuarded(raw);
        rec.state = parseJsonBytes(raw);
        if (c.checksum.length === 32) {
          const want = toHex(c.checksum);
          pending.push(
            sha256Hex(raw).then((h) => {
              rec.checksumOk = h === want;
            }),
          );
        }
      } catch (e) {
        rec.error = clip(`checkpoint state undecodable: ${(e as Error).message}`);
      }
      out.push(rec);
      return;
    }
    case 'metrics': {
      const mm = m.value;
      const metrics: Record<string, { value: number | string | boolean; unit: string }> = {};
      for (const [k, v] of Object.entries(mm.metrics)) {
        let value: number | string | boolean = 0;
        switch (v.value.case) {
          case 'intValue':
            value = Number(v.value.value);
            break;
          case 'floatValue':
          case 'stringValue':
          case 'boolValue':
            value = v.value.value;
            break;
          case 'bytesValue':
            value = `bytes(${v.value.value.length})`;
            break;
          default:
            break;
        }
        metrics[k] = { value, unit: v.unit };
      }
      out.push({
        ...base(mm.header, ctx, size),
        kind: 'metrics',
        scope: mm.scope,
        scopeId: mm.scopeId,
        metrics,
        tags: { ...mm.tags },
      });
      return;
    }
    case 'error': {
      const e = m.value;
      out.push({
        ...base(e.header, ctx, size),
        kind: 'error',
        code: e.errorCode,
        message: clip(e.message),
        severity: e.severity,
        context: { ...e.context },
      });
      return;
    }
    case 'executionTrace': {
      const t = m.value;
      const rec = base(t.header, ctx, size);
      out.push({
        ...rec,
        thread: rec.thread || t.threadId,
        kind: 'trace',
        executionId: t.executionId,
        totalDurationMs: bigToNumber(t.totalDurationMs),
        totalTokens: bigToNumber(t.totalTokens),
        completed: t.completed,
        nodes: t.nodesExecuted.length,
        errors: t.errors.slice(0, 50).map((x) => ({ node: x.node, message: clip(x.message, 500) })),
      });
      return;
    }
    default:
      out.push({ ...base(undefined, ctx, size), kind: 'unknown' });
  }
}

function emptyFrame(): DecodedFrame {
  return { records: [], errors: [], kafkaRecords: 0, maxOffsets: [], maxSchemaVersion: 0, bytes: 0 };
}

/**
 * Decodes raw Kafka records. Undecodable records become errors (with their
 * cursor); the rest are decoded. Awaits the hashes computed for full states
 * and checkpoints.
 */
export async function decodeRecords(raws: readonly RawRecord[], bytes: number): Promise<DecodedFrame> {
  const f = emptyFrame();
  f.bytes = bytes;
  const pending: Promise<void>[] = [];
  const maxOff = new Map<number, bigint>();
  for (const r of raws) {
    const cur = { p: r.partition, o: r.offset };
    const prev = maxOff.get(r.partition);
    if (prev === undefined || r.offset > prev) maxOff.set(r.partition, r.offset);
    f.kafkaRecords++;
    try {
      const start = f.records.length;
      decodeValue(r.payload, cur, f.records, pending);
      for (let i = start; i < f.records.length; i++) {
        const sv = (f.records[i] as Rec).schemaVersion;
        if (sv > f.maxSchemaVersion) f.maxSchemaVersion = sv;
      }
    } catch (e) {
      const err: RecordError = {
        cursor: cur,
        code: e instanceof DecodeError ? e.code : 'DECODE_FAILED',
        message: clip((e as Error).message, 500),
      };
      f.errors.push(err);
    }
  }
  await Promise.all(pending);
  f.maxOffsets = [...maxOff.entries()];
  return f;
}

/**
 * Decodes one WebSocket binary frame: a D6 batch (byte 0x02), or a single
 * record value paired with the cursor frame that preceded it.
 */
export async function decodeFrame(buf: Uint8Array, cursor: Cursor | null): Promise<DecodedFrame> {
  if (buf.length > 0 && buf[0] === BATCH_FRAME_TYPE) {
    return decodeRecords(parseBatch(buf), buf.length);
  }
  if (!cursor) throw new DecodeError('MISSING_CURSOR', 'binary frame without a cursor');
  return decodeRecords([{ partition: cursor.p, offset: cursor.o, payload: buf }], buf.length);
}
