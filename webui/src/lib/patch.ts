// RFC 6902 JSON Patch on immutable JSON with structural sharing: applying a
// patch copies only the containers on the changed paths, so every state
// version of a run can be kept for time travel at the cost of its changes.
// Containers created while applying one patch are owned by it and mutated in
// place, so many ops on one array cost one copy.
//
// Strict RFC semantics: add inserts into arrays ("-" appends), replace and
// remove need an existing target, indices are decimal without leading
// zeros, test compares with serde_json equality. Only own properties are
// ever read or written, so "__proto__" and friends are ordinary keys.
import { isContainer, jsonEqual, setOwn, type JsonObject, type JsonValue } from './json';

export type PatchOpName = 'add' | 'remove' | 'replace' | 'move' | 'copy' | 'test';

export interface PatchOp {
  op: PatchOpName;
  path: string;
  from?: string;
  value?: JsonValue;
}

export const MAX_PATCH_OPS = 10_000;
export const MAX_POINTER_LENGTH = 4096;

export class PatchError extends Error {
  readonly opIndex: number;
  constructor(message: string, opIndex: number) {
    super(message);
    this.name = 'PatchError';
    this.opIndex = opIndex;
  }
}

/** Parses an RFC 6901 pointer into unescaped tokens. */
export function parsePointer(ptr: string): string[] {
  if (ptr === '') return [];
  if (ptr.length > MAX_POINTER_LENGTH) throw new Error(`pointer longer than ${MAX_POINTER_LENGTH} characters`);
  if (ptr[0] !== '/') throw new Error(`pointer must start with '/': ${JSON.stringify(ptr)}`);
  const parts = ptr.slice(1).split('/');
  return parts.map((t) => {
    if (t.indexOf('~') < 0) return t;
    if (/~[^01]|~$/.test(t)) throw new Error(`invalid escape in pointer ${JSON.stringify(ptr)}`);
    return t.replace(/~1/g, '/').replace(/~0/g, '~');
  });
}

export function escapeToken(t: string): string {
  return t.replace(/~/g, '~0').replace(/\//g, '~1');
}

export function toPointer(tokens: readonly (string | number)[]): string {
  return tokens.map((t) => '/' + escapeToken(String(t))).join('');
}

const hasOwn = (o: object, k: string) => Object.prototype.hasOwnProperty.call(o, k);

function arrayIndex(tok: string, len: number, allowEnd: boolean): number {
  if (allowEnd && tok === '-') return len;
  if (!/^(0|[1-9][0-9]*)$/.test(tok)) throw new Error(`invalid array index ${JSON.stringify(tok)}`);
  const i = Number(tok);
  if (i > len || (!allowEnd && i === len)) throw new Error(`array index ${i} out of bounds (length ${len})`);
  return i;
}

/** Reads the value at tokens (undefined if absent). */
export function getAt(doc: JsonValue, tokens: readonly string[]): JsonValue | undefined {
  let cur: JsonValue | undefined = doc;
  for (const t of tokens) {
    if (!isContainer(cur)) return undefined;
    if (Array.isArray(cur)) {
      if (!/^(0|[1-9][0-9]*)$/.test(t)) return undefined;
      cur = cur[Number(t)];
    } else {
      if (!hasOwn(cur, t)) return undefined;
      cur = (cur as JsonObject)[t];
    }
  }
  return cur;
}

class Applier {
  private readonly owned = new WeakSet<object>();

  private copy<T extends JsonValue[] | JsonObject>(c: T): T {
    if (this.owned.has(c)) return c;
    let out: T;
    if (Array.isArray(c)) out = c.slice() as T;
    else {
      const o: JsonObject = {};
      for (const k of Object.keys(c)) setOwn(o, k, (c as JsonObject)[k] as JsonValue);
      out = o as T;
    }
    this.owned.add(out);
    return out;
  }

  /** Returns doc with the container at parentTokens replaced by edit(copy). */
  private edit(
    doc: JsonValue,
    parentTokens: readonly string[],
    depth: number,
    fn: (parent: JsonValue[] | JsonObject) => void,
  ): JsonValue {
    if (!isContainer(doc)) throw new Error(`path ${toPointer(parentTokens.slice(0, depth))} is not a container`);
    const c = this.copy(doc);
    if (depth === parentTokens.length) {
      fn(c);
      return c;
    }
    const t = parentTokens[depth] as string;
    if (Array.isArray(c)) {
      const i = arrayIndex(t, c.length, false);
      c[i] = this.edit(c[i] as JsonValue, parentTokens, depth + 1, fn);
    } else {
      if (!hasOwn(c, t)) throw new Error(`path ${toPointer(parentTokens.slice(0, depth + 1))} does not exist`);
      setOwn(c, t, this.edit((c as JsonObject)[t] as JsonValue, parentTokens, depth + 1, fn));
    }
    return c;
  }

  add(doc: JsonValue, tokens: readonly string[], value: JsonValue): JsonValue {
    if (tokens.length === 0) return value;
    const last = tokens[tokens.length - 1] as string;
    return this.edit(doc, tokens.slice(0, -1), 0, (p) => {
      if (Array.isArray(p)) p.splice(arrayIndex(last, p.length, true), 0, value);
      else setOwn(p, last, value);
    });
  }

  remove(doc: JsonValue, tokens: readonly string[]): JsonValue {
    if (tokens.length === 0) throw new Error('cannot remove the root');
    const last = tokens[tokens.length - 1] as string;
    return this.edit(doc, tokens.slice(0, -1), 0, (p) => {
      if (Array.isArray(p)) p.splice(arrayIndex(last, p.length, false), 1);
      else {
        if (!hasOwn(p, last)) throw new Error(`path ${toPointer(tokens)} does not exist`);
        delete p[last];
      }
    });
  }

  replace(doc: JsonValue, tokens: readonly string[], value: JsonValue): JsonValue {
    if (tokens.length === 0) return value;
    const last = tokens[tokens.length - 1] as string;
    return this.edit(doc, tokens.slice(0, -1), 0, (p) => {
      if (Array.isArray(p)) p[arrayIndex(last, p.length, false)] = value;
      else {
        if (!hasOwn(p, last)) throw new Error(`path ${toPointer(tokens)} does not exist`);
        setOwn(p, last, value);
      }
    });
  }
}

function must(doc: JsonValue, tokens: readonly string[], ptr: string): JsonValue {
  const v = getAt(doc, tokens);
  if (v === undefined) throw new Error(`path ${ptr} does not exist`);
  return v;
}

/**
 * Applies ops to doc and returns the new document; doc is never modified.
 * Throws PatchError (with the failing op index) and applies nothing then.
 */
export function applyPatch(doc: JsonValue, ops: readonly PatchOp[]): JsonValue {
  if (ops.length > MAX_PATCH_OPS) throw new PatchError(`patch has ${ops.length} ops (max ${MAX_PATCH_OPS})`, 0);
  const a = new Applier();
  let cur = doc;
  ops.forEach((op, i) => {
    try {
      const path = parsePointer(op.path);
      switch (op.op) {
        case 'add':
          cur = a.add(cur, path, op.value ?? null);
          break;
        case 'remove':
          cur = a.remove(cur, path);
          break;
        case 'replace':
          cur = a.replace(cur, path, op.value ?? null);
          break;
        case 'move': {
          if (op.from === undefined) throw new Error('move without from');
          const from = parsePointer(op.from);
          if (op.from === op.path) break;
          if (op.path.startsWith(op.from + '/')) throw new Error('cannot move a value into itself');
          const v = must(cur, from, op.from);
          cur = a.add(a.remove(cur, from), path, v);
          break;
        }
        case 'copy': {
          if (op.from === undefined) throw new Error('copy without from');
          const v = must(cur, parsePointer(op.from), op.from);
          cur = a.add(cur, path, v);
          break;
        }
        case 'test': {
          const v = getAt(cur, path);
          if (v === undefined || !jsonEqual(v, op.value ?? null)) throw new Error(`test failed at ${op.path}`);
          break;
        }
        default:
          throw new Error(`unknown op ${String((op as { op: unknown }).op)}`);
      }
    } catch (e) {
      if (e instanceof PatchError) throw e;
      throw new PatchError(`op ${i} (${op.op} ${op.path}): ${(e as Error).message}`, i);
    }
  });
  return cur;
}
