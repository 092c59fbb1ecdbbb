import { describe, expect, test } from 'vitest';
import { zstdContentSize, zstdDecompressGuarded, DecodeError } from '../src/lib/zstd';
import { decodeFrame, unframe } from '../src/lib/decode';
import { readSession, sessionRecords } from './helpers';

const b64 = (s: string) => new Uint8Array(Buffer.from(s, 'base64'));
// 5474 bytes of JSON, compressed by the zstd CLI (with and without a content size).
const OK = b64('KLUv/WRiFEUCAJQDeyJtZXNzYWdlcyI6IFt7InJvbGUiOiAidXNlciIsICJjb250ZW50aGVsbG8gd29ybGQgIn0sIF19AwA+RLF6En6hdLPmE3+1dxo=');
const NO_SIZE = b64('KLUv/QRYVQIA1AN7Im1lc3NhZ2VzIjogW3sicm9sZSI6ICJ1c2VyIiwgImNvbnRlbnQiOiAiaGVsbG8gd29ybGQgIn0sIF19AgA+RLF6cuFTBQp/tXca');

describe('zstd bomb guard', () => {
  test('declared size is read before decompressing', () => {
    expect(zstdContentSize(OK)).toBe(5474);
    expect(zstdContentSize(NO_SIZE)).toBeNull();
    expect(zstdDecompressGuarded(OK).length).toBe(5474);
  });
  test('a frame without a content size is refused', () => {
    expect(() => zstdDecompressGuarded(NO_SIZE)).toThrow(/content size/);
  });
  test('a frame declaring more than 10 MiB is refused before any allocation', () => {
    // Single-segment frame header with an 8-byte Frame_Content_Size of 1 GiB and no blocks at all:
    // decompressing it would fail, so refusing it proves the check comes first.
    const bomb = new Uint8Array([0x28, 0xb5, 0x2f, 0xfd, 0xe0, 0, 0, 0, 0x40, 0, 0, 0, 0]);
    expect(zstdContentSize(bomb)).toBe(1024 * 1024 * 1024);
    try {
      zstdDecompressGuarded(bomb);
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(DecodeError);
      expect((e as DecodeError).code).toBe('DECOMPRESSED_SIZE_EXCEEDED');
    }
    // Framed as a DashStream value (0x01 + frame).
    const framed = new Uint8Array(bomb.length + 1);
    framed[0] = 1;
    framed.set(bomb, 1);
    expect(() => unframe(framed)).toThrow(/declares/);
  });
  test('a frame that lies about its size never gets more memory than it declared', () => {
    const lie = OK.slice();
    lie[6] = 0x10; // Frame_Content_Size 5474 → 4450: holds more than it declares
    let out: Uint8Array | null = null;
    try {
      out = zstdDecompressGuarded(lie);
    } catch (e) {
      expect(e).toBeInstanceOf(DecodeError);
    }
    if (out) expect(out.length).toBe(4450); // truncated, never larger
  });
  test('oversized record values are refused before decoding', () => {
    const big = new Uint8Array(10 * 1024 * 1024 + 2);
    expect(() => unframe(big)).toThrow(/exceeds/);
  });
  test('real zstd-framed records of a recorded session decode', async () => {
    const recs = sessionRecords(readSession('test/fixtures/session.frames'));
    const zstdFramed = recs.filter((r) => r.payload[0] === 1);
    expect(zstdFramed.length).toBeGreaterThan(5);
    for (const r of zstdFramed.slice(0, 50)) {
      const f = await decodeFrame(r.payload, { p: r.partition, o: r.offset });
      expect(f.errors).toEqual([]);
      expect(f.records.length).toBeGreaterThan(0);
    }
  });
});
