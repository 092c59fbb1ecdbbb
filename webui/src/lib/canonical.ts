// Canonical JSON and the state hash (wire-protocol §3.5): compact, object
// keys sorted byte-wise (UTF-8 order, like Rust's BTreeMap), strings with
// serde_json's escaping, integers as integers, floats in serde_json's ryu
// layout. SHA-256 of that text is StateDiff.state_hash.
import { sha256 as nobleSha256 } from '@noble/hashes/sha2.js';
import { JsonFloat, type JsonObject, type JsonValue } from './json';

/** serde_json's text for a finite f64 (see wire.AppendCanonicalFloat). */
export function serdeFloat(x: number): string {
  if (!Number.isFinite(x)) throw new RangeError(`canonical JSON: non-finite number ${x}`);
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  const sign = x < 0 ? '-' : '';
  // toExponential() without an argument gives the shortest digits that
  // round-trip, like ryu: "d.ddde±N".
  const t = Math.abs(x).toExponential();
  const ePos = t.indexOf('e');
  const mant = t.slice(0, ePos);
  const exp = Number(t.slice(ePos + 1));
  const digits = mant.replace('.', '');
  if (exp >= -5 && exp <= 15) {
    if (exp >= 0) {
      const intLen = exp + 1;
      if (digits.length <= intLen) return sign + digits + '0'.repeat(intLen - digits.length) + '.0';
      return sign + digits.slice(0, intLen) + '.' + digits.slice(intLen);
    }
    return sign + '0.' + '0'.repeat(-exp - 1) + digits;
  }
  const m = digits.length === 1 ? digits : digits[0] + '.' + digits.slice(1);
  return sign + m + 'e' + exp;
}

function hasHighSurrogateRange(keys: string[]): boolean {
  for (const k of keys) {
    for (let i = 0; i < k.length; i++) if (k.charCodeAt(i) >= 0xd800) return true;
  }
  return false;
}

const enc = new TextEncoder();

function compareUtf8(a: string, b: string): number {
  const x = enc.encode(a);
  const y = enc.encode(b);
  const n = Math.min(x.length, y.length);
  for (let i = 0; i < n; i++) {
    const d = (x[i] as number) - (y[i] as number);
    if (d !== 0) return d;
  }
  return x.length - y.length;
}

/** Keys of obj in canonical (UTF-8 byte) order. */
export function sortedKeys(obj: JsonObject): string[] {
  const keys = Object.keys(obj).sort();
  // UTF-16 order equals UTF-8 order unless astral characters meet
  // U+E000..U+FFFF; only then pay for the byte comparison.
  if (hasHighSurrogateRange(keys)) keys.sort(compareUtf8);
  return keys;
}

/**
 * Cache of canonical text per container. States share structure between
 * versions (patches copy only the changed path), so hashing a new version
 * re-serialises only what changed. Roots are not cached (their text is the
 * whole state and would pin a copy per version); JS string concatenation
 * keeps the cached children as ropes.
 */
const cache = new WeakMap<object, string>();

function canon(v: JsonValue, depth: number, useCache: boolean): string {
  if (v === null) return 'null';
  switch (typeof v) {
    case 'boolean':
      return v ? 'true' : 'false';
    case 'string':
      return JSON.stringify(v);
    case 'bigint':
      return v.toString();
    case 'number':
      return Number.isInteger(v) && !Object.is(v, -0) ? String(v) : serdeFloat(v);
    default:
      break;
  }
  if (v instanceof JsonFloat) return serdeFloat(v.value);
  if (depth > 10000) throw new RangeError('canonical JSON: nesting too deep');
  if (useCache && depth > 0) {
    const hit = cache.get(v);
    if (hit !== undefined) return hit;
  }
  let s: string;
  if (Array.isArray(v)) {
    s = '[';
    for (let i = 0; i < v.length; i++) {
      if (i > 0) s += ',';
      s += canon(v[i] as JsonValue, depth + 1, useCache);
    }
    s += ']';
  } else {
    const obj = v as JsonObject;
    const keys = sortedKeys(obj);
    s = '{';
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i] as string;
      if (i > 0) s += ',';
      s += JSON.stringify(k) + ':' + canon(obj[k] as JsonValue, depth + 1, useCache);
    }
    s += '}';
  }
  if (useCache && depth > 0) cache.set(v, s);
  return s;
}

/** Canonical JSON text of v. */
export function canonicalJson(v: JsonValue, opts: { cache?: boolean } = {}): string {
  return canon(v, 0, opts.cache ?? false);
}

export function toHex(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i++) s += (bytes[i] as number).toString(16).padStart(2, '0');
  return s;
}

type Subtle = { digest(alg: string, data: Uint8Array): Promise<ArrayBuffer> };

function subtle(): Subtle | null {
  const c = (globalThis as { crypto?: { subtle?: Subtle } }).crypto;
  return c?.subtle ?? null;
}

/** SHA-256 of bytes as hex: WebCrypto when available (secure contexts), else @noble/hashes. */
export async function sha256Hex(data: Uint8Array): Promise<string> {
  const s = subtle();
  if (s) {
    try {
      return toHex(new Uint8Array(await s.digest('SHA-256', data)));
    } catch {
      // fall through to the JS implementation
    }
  }
  return toHex(nobleSha256(data));
}

export function sha256HexSync(data: Uint8Array): string {
  return toHex(nobleSha256(data));
}

/** The state hash of v: SHA-256 of its canonical JSON, as hex. */
export async function stateHash(v: JsonValue, opts: { cache?: boolean } = {}): Promise<string> {
  return sha256Hex(enc.encode(canonicalJson(v, opts)));
}
