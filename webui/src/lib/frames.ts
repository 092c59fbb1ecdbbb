// The D6 batch layout (WebSocket binary frames with ?batch=1 and the body
// of /api/runs/{thread}/records):
//
//   0x02 | uvarint count | count × (partition int32 BE | offset int64 BE |
//                                   uvarint length | payload)
import { DecodeError } from './zstd';

export const BATCH_FRAME_TYPE = 0x02;

export interface RawRecord {
  partition: number;
  offset: bigint;
  payload: Uint8Array;
}

/** Reads an unsigned LEB128 varint (≤ 2^53) at pos. */
export function readUvarint(b: Uint8Array, pos: number): [value: number, next: number] {
  let result = 0;
  let mul = 1;
  for (let i = 0; i < 10; i++) {
    if (pos >= b.length) throw new DecodeError('BATCH_TRUNCATED', 'truncated varint');
    const byte = b[pos++] as number;
    result += (byte & 0x7f) * mul;
    if (byte < 0x80) {
      if (result > Number.MAX_SAFE_INTEGER) throw new DecodeError('BATCH_INVALID', 'varint too large');
      return [result, pos];
    }
    mul *= 128;
  }
  throw new DecodeError('BATCH_INVALID', 'varint too long');
}

export function writeUvarint(out: number[], v: number): void {
  while (v >= 0x80) {
    out.push((v % 128) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
}

/** Parses a D6 batch. The payloads are views into b (no copy). */
export function parseBatch(b: Uint8Array): RawRecord[] {
  if (b.length < 2 || b[0] !== BATCH_FRAME_TYPE) throw new DecodeError('BATCH_INVALID', 'not a batch frame');
  let [count, pos] = readUvarint(b, 1);
  // Every record takes at least 13 bytes: refuse counts the frame cannot hold.
  if (count > (b.length - pos) / 13) throw new DecodeError('BATCH_INVALID', `batch claims ${count} records`);
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const out: RawRecord[] = [];
  for (let i = 0; i < count; i++) {
    if (pos + 12 > b.length) throw new DecodeError('BATCH_TRUNCATED', `record ${i}: truncated header`);
    const partition = view.getInt32(pos);
    const offset = view.getBigInt64(pos + 4);
    let len: number;
    [len, pos] = readUvarint(b, pos + 12);
    if (pos + len > b.length) throw new DecodeError('BATCH_TRUNCATED', `record ${i}: truncated payload`);
    out.push({ partition, offset, payload: b.subarray(pos, pos + len) });
    pos += len;
  }
  if (pos !== b.length) throw new DecodeError('BATCH_INVALID', `${b.length - pos} trailing bytes after batch`);
  return out;
}

/** Builds a D6 batch (tests and tools). */
export function buildBatch(records: readonly RawRecord[]): Uint8Array {
  const head: number[] = [BATCH_FRAME_TYPE];
  writeUvarint(head, records.length);
  const parts: Uint8Array[] = [Uint8Array.from(head)];
  for (const r of records) {
    const h = new Uint8Array(12);
    const dv = new DataView(h.buffer);
    dv.setInt32(0, r.partition);
    dv.setBigInt64(4, r.offset);
    const l: number[] = [];
    writeUvarint(l, r.payload.length);
    parts.push(h, Uint8Array.from(l), r.payload);
  }
  const total = parts.reduce((n, p) => n + p.length, 0);
  const out = new Uint8Array(total);
  let pos = 0;
  for (const p of parts) {
    out.set(p, pos);
    pos += p.length;
  }
  return out;
}
