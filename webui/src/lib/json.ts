// Lossless JSON for state reconstruction and hashing.
//
// The state hash is SHA-256 over canonical JSON as Rust's serde_json writes
// it (wire-protocol §3.5): integers stay integers digit for digit, floats are
// written in serde's ryu layout ("1.0", "1e16"). JavaScript's JSON.parse
// loses two distinctions that matter for that: an integral float ("1.0")
// becomes the number 1, and integers beyond 2^53 lose digits. We keep them:
//
//   - integral-valued float literals (and "-0") parse to JsonFloat;
//   - integers beyond Number.MAX_SAFE_INTEGER that fit in u64/i64 parse to
//     bigint; wider integer literals are floats in serde_json (JsonFloat).
//
// Everything else is an ordinary JS value. parseJson takes the fast native
// path when a quick scan finds no such literal.

/** An integral-valued JSON float (a literal with '.', 'e' or 'E', or -0). */
export class JsonFloat {
  readonly value: number;
  constructor(value: number) {
    this.value = value;
  }
  toJSON(): number {
    return this.value;
  }
}

export type JsonValue =
  | null
  | boolean
  | number
  | string
  | bigint
  | JsonFloat
  | JsonValue[]
  | JsonObject;

export interface JsonObject {
  [key: string]: JsonValue;
}

export function isJsonObject(v: JsonValue | undefined): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof JsonFloat);
}

export function isContainer(v: JsonValue | undefined): v is JsonValue[] | JsonObject {
  return typeof v === 'object' && v !== null && !(v instanceof JsonFloat);
}

const MAX_SAFE = Number.MAX_SAFE_INTEGER;
const U64_MAX = 18446744073709551615n;
const I64_MIN = -9223372036854775808n;

/** Classifies one number literal; returns the lossless value. */
function numberValue(lit: string): number | bigint | JsonFloat {
  let integer = true;
  for (let i = 0; i < lit.length; i++) {
    const c = lit.charCodeAt(i);
    if (c === 46 /* . */ || c === 101 /* e */ || c === 69 /* E */) {
      integer = false;
      break;
    }
  }
  if (integer) {
    if (lit === '-0') return new JsonFloat(-0);
    const n = Number(lit);
    if (n <= MAX_SAFE && n >= -MAX_SAFE) return n;
    const b = BigInt(lit);
    if (b <= U64_MAX && b >= I64_MIN) return b;
    return new JsonFloat(n); // serde_json: wider than 64 bits is an f64
  }
  const f = Number(lit);
  if (!Number.isFinite(f)) throw new SyntaxError(`JSON number out of range: ${lit}`);
  if (Number.isInteger(f)) return new JsonFloat(f); // 1.0, 1e3, 0.0, -0.0
  return f;
}

/**
 * Reports whether text holds a number literal that JSON.parse would not
 * keep exactly (integral float, -0, integer beyond 2^53). Strings are
 * skipped. The scan is linear and allocation-free except for the rare
 * literal it has to look at closely.
 */
export function needsLosslessParse(text: string): boolean {
  const n = text.length;
  let i = 0;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === 34 /* " */) {
      i++;
      while (i < n) {
        const d = text.charCodeAt(i);
        if (d === 92 /* \ */) i += 2;
        else if (d === 34) break;
        else i++;
      }
      i++;
      continue;
    }
    if (c === 45 /* - */ || (c >= 48 && c <= 57)) {
      const start = i;
      let frac = false;
      i++;
      while (i < n) {
        const d = text.charCodeAt(i);
        if (d >= 48 && d <= 57) i++;
        else if (d === 46 || d === 101 || d === 69 || d === 43 || d === 45) {
          frac = true;
          i++;
        } else break;
      }
      const len = i - start;
      if (frac) {
        // A float literal: exact unless its value is integral.
        if (Number.isInteger(Number(text.slice(start, i)))) return true;
      } else if (len >= 16 || (len === 2 && c === 45 && text.charCodeAt(start + 1) === 48)) {
        // Long integer (maybe beyond 2^53) or "-0".
        const lit = text.slice(start, i);
        if (lit === '-0' || !Number.isSafeInteger(Number(lit))) return true;
      }
      continue;
    }
    i++;
  }
  return false;
}

/** Parses JSON text losslessly (see the file comment). Throws SyntaxError. */
export function parseJson(text: string): JsonValue {
  if (!needsLosslessParse(text)) return JSON.parse(text) as JsonValue;
  return new Parser(text).parseDocument();
}

const utf8Decoder = new TextDecoder('utf-8', { fatal: true });

/** Decodes UTF-8 bytes (invalid UTF-8 throws) and parses them. */
export function parseJsonBytes(bytes: Uint8Array): JsonValue {
  return parseJson(utf8Decoder.decode(bytes));
}

export function decodeUtf8(bytes: Uint8Array): string {
  return utf8Decoder.decode(bytes);
}

/** Sets key on obj as an own data property (safe for "__proto__"). */
export function setOwn(obj: JsonObject, key: string, value: JsonValue): void {
  if (key === '__proto__') {
    Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
  } else {
    obj[key] = value;
  }
}

class Parser {
  private i = 0;
  private readonly s: string;
  constructor(s: string) {
    this.s = s;
  }

  parseDocument(): JsonValue {
    this.ws();
    const v = this.value(0);
    this.ws();
    if (this.i !== this.s.length) this.fail('trailing data');
    return v;
  }

  private fail(msg: string): never {
    throw new SyntaxError(`JSON: ${msg} at ${this.i}`);
  }

  private ws(): void {
    const s = this.s;
    while (this.i < s.length) {
      const c = s.charCodeAt(this.i);
      if (c === 32 || c === 9 || c === 10 || c === 13) this.i++;
      else break;
    }
  }

  private value(depth: number): JsonValue {
    if (depth > 10000) this.fail('nesting too deep');
    const s = this.s;
    const c = s.charCodeAt(this.i);
    if (c === 123 /* { */) {
      this.i++;
      const obj: JsonObject = {};
      this.ws();
      if (s.charCodeAt(this.i) === 125) {
        this.i++;
        return obj;
      }
      for (;;) {
        this.ws();
        if (s.charCodeAt(this.i) !== 34) this.fail('expected string key');
        const key = this.string();
        this.ws();
        if (s.charCodeAt(this.i) !== 58) this.fail("expected ':'");
        this.i++;
        this.ws();
        setOwn(obj, key, this.value(depth + 1));
        this.ws();
        const d = s.charCodeAt(this.i);
        if (d === 44) {
          this.i++;
          continue;
        }
        if (d === 125) {
          this.i++;
          return obj;
        }
        this.fail("expected ',' or '}'");
      }
    }
    if (c === 91 /* [ */) {
      this.i++;
      const arr: JsonValue[] = [];
      this.ws();
      if (s.charCodeAt(this.i) === 93) {
        this.i++;
        return arr;
      }
      for (;;) {
        this.ws();
        arr.push(this.value(depth + 1));
        this.ws();
        const d = s.charCodeAt(this.i);
        if (d === 44) {
          this.i++;
          continue;
        }
        if (d === 93) {
          this.i++;
          return arr;
        }
        this.fail("expected ',' or ']'");
      }
    }
    if (c === 34) return this.string();
    if (c === 116 && s.startsWith('true', this.i)) {
      this.i += 4;
      return true;
    }
    if (c === 102 && s.startsWith('false', this.i)) {
      this.i += 5;
      return false;
    }
    if (c === 110 && s.startsWith('null', this.i)) {
      this.i += 4;
      return null;
    }
    if (c === 45 || (c >= 48 && c <= 57)) return this.number();
    return this.fail('unexpected character');
  }

  private string(): string {
    // Find the closing quote, then let JSON.parse decode the escapes.
    const s = this.s;
    const start = this.i;
    let i = start + 1;
    let escaped = false;
    while (i < s.length) {
      const c = s.charCodeAt(i);
      if (c === 92) {
        escaped = true;
        i += 2;
      } else if (c === 34) break;
      else if (c < 32) this.fail('control character in string');
      else i++;
    }
    if (i >= s.length) this.fail('unterminated string');
    this.i = i + 1;
    if (!escaped) return s.slice(start + 1, i);
    return JSON.parse(s.slice(start, i + 1)) as string;
  }

  private number(): JsonValue {
    const s = this.s;
    const m = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/.exec(s.slice(this.i, this.i + 400));
    if (!m || m[0].length === 0 || m[0] === '-') this.fail('invalid number');
    this.i += m[0].length;
    return numberValue(m[0]);
  }
}

/** Deep equality with serde_json semantics (1 and 1.0 differ). */
export function jsonEqual(a: JsonValue | undefined, b: JsonValue | undefined): boolean {
  if (a === b) return true;
  if (a instanceof JsonFloat) return b instanceof JsonFloat && Object.is(a.value, b.value);
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (b instanceof JsonFloat) return false;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!jsonEqual(a[i], b[i])) return false;
    return true;
  }
  if (Array.isArray(b)) return false;
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  for (const k of ka) {
    if (!Object.prototype.hasOwnProperty.call(b, k)) return false;
    if (!jsonEqual(a[k], b[k])) return false;
  }
  return true;
}

/** Pretty JSON for display and copy (JsonFloat as "1.0", bigint as digits). */
export function stringifyPretty(v: JsonValue, indent = 2): string {
  const out: string[] = [];
  const pad = (n: number) => ' '.repeat(n * indent);
  const walk = (x: JsonValue, depth: number): void => {
    if (x === null) out.push('null');
    else if (typeof x === 'boolean') out.push(x ? 'true' : 'false');
    else if (typeof x === 'number') out.push(Number.isFinite(x) ? String(x) : 'null');
    else if (typeof x === 'bigint') out.push(x.toString());
    else if (typeof x === 'string') out.push(JSON.stringify(x));
    else if (x instanceof JsonFloat) out.push(formatFloatLiteral(x.value));
    else if (Array.isArray(x)) {
      if (x.length === 0) {
        out.push('[]');
        return;
      }
      out.push('[\n');
      x.forEach((e, i) => {
        out.push(pad(depth + 1));
        walk(e, depth + 1);
        out.push(i < x.length - 1 ? ',\n' : '\n');
      });
      out.push(pad(depth) + ']');
    } else {
      const keys = Object.keys(x);
      if (keys.length === 0) {
        out.push('{}');
        return;
      }
      out.push('{\n');
      keys.forEach((k, i) => {
        out.push(pad(depth + 1) + JSON.stringify(k) + ': ');
        walk(x[k] as JsonValue, depth + 1);
        out.push(i < keys.length - 1 ? ',\n' : '\n');
      });
      out.push(pad(depth) + '}');
    }
  };
  walk(v, 0);
  return out.join('');
}

/** "1.0" style text of an integral float for display. */
export function formatFloatLiteral(v: number): string {
  if (Object.is(v, -0)) return '-0.0';
  const s = String(v);
  return /[.eE]/.test(s) ? s : s + '.0';
}

/** Short one-line preview of a value (for trees and diffs). */
export function preview(v: JsonValue | undefined, max = 80): string {
  if (v === undefined) return '—';
  let s: string;
  if (typeof v === 'string') s = JSON.stringify(v);
  else if (typeof v === 'bigint') s = v.toString();
  else if (v instanceof JsonFloat) s = formatFloatLiteral(v.value);
  else if (Array.isArray(v)) s = `[${v.length} item${v.length === 1 ? '' : 's'}]`;
  else if (v !== null && typeof v === 'object') {
    const n = Object.keys(v).length;
    s = `{${n} key${n === 1 ? '' : 's'}}`;
  } else s = String(v);
  return s.length > max ? s.slice(0, max - 1) + '…' : s;
}
