// zstd with a bomb guard: the frame must declare its content size and that
// size must be within the limit *before* anything is decompressed; the
// output buffer is allocated at the declared size, so a frame that lies
// cannot make us allocate more.
import { decompress } from 'fzstd';

export const MAX_DECOMPRESSED_BYTES = 10 * 1024 * 1024; // 10 MiB, as the server

export const ZSTD_MAGIC = [0x28, 0xb5, 0x2f, 0xfd] as const;

export class DecodeError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = 'DecodeError';
    this.code = code;
  }
}

export function hasZstdMagic(b: Uint8Array, at = 0): boolean {
  return (
    b.length >= at + 4 &&
    b[at] === ZSTD_MAGIC[0] &&
    b[at + 1] === ZSTD_MAGIC[1] &&
    b[at + 2] === ZSTD_MAGIC[2] &&
    b[at + 3] === ZSTD_MAGIC[3]
  );
}

/**
 * Frame_Content_Size of the zstd frame at the start of b (RFC 8878 §3.1.1),
 * or null when the frame does not declare it.
 */
export function zstdContentSize(b: Uint8Array): number | null {
  if (!hasZstdMagic(b)) throw new DecodeError('INVALID_ZSTD', 'not a zstd frame (bad magic)');
  if (b.length < 5) throw new DecodeError('INVALID_ZSTD', 'truncated zstd frame header');
  const fhd = b[4] as number;
  const fcsFlag = fhd >> 6;
  const singleSegment = (fhd >> 5) & 1;
  const dictFlag = fhd & 3;
  if ((fhd >> 3) & 1) throw new DecodeError('INVALID_ZSTD', 'zstd reserved bit set');
  let pos = 5;
  if (!singleSegment) pos += 1; // Window_Descriptor
  pos += [0, 1, 2, 4][dictFlag] as number;
  const fcsBytes = fcsFlag === 0 ? (singleSegment ? 1 : 0) : ([0, 2, 4, 8][fcsFlag] as number);
  if (fcsBytes === 0) return null;
  if (b.length < pos + fcsBytes) throw new DecodeError('INVALID_ZSTD', 'truncated zstd frame header');
  let size = 0;
  for (let i = fcsBytes - 1; i >= 0; i--) size = size * 256 + (b[pos + i] as number);
  if (fcsBytes === 2) size += 256;
  return size;
}

/** Decompresses one zstd frame whose declared size is ≤ limit. */
export function zstdDecompressGuarded(b: Uint8Array, limit = MAX_DECOMPRESSED_BYTES): Uint8Array {
  const size = zstdContentSize(b);
  if (size === null) throw new DecodeError('ZSTD_UNKNOWN_SIZE', 'zstd frame without a content size is refused');
  if (size > limit) {
    throw new DecodeError('DECOMPRESSED_SIZE_EXCEEDED', `zstd frame declares ${size} bytes (limit ${limit})`);
  }
  // The output buffer has exactly the declared size: a frame that holds more
  // than it declares cannot make the decoder allocate or write past it.
  const out = new Uint8Array(size);
  let res: Uint8Array;
  try {
    res = decompress(b, out);
  } catch (e) {
    throw new DecodeError('INVALID_ZSTD', `zstd: ${(e as Error).message}`);
  }
  if (res.length > size) throw new DecodeError('INVALID_ZSTD', `zstd output larger than the declared ${size} bytes`);
  return res;
}
