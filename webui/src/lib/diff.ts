// Nested structural diff of two JSON values for the "what did this step
// change" view. Shared subtrees (same reference, thanks to structural
// sharing) are skipped without looking inside.
import { isContainer, isJsonObject, jsonEqual, type JsonValue } from './json';

export type ChangeKind = 'added' | 'removed' | 'changed';

export interface Change {
  path: (string | number)[];
  kind: ChangeKind;
  before?: JsonValue;
  after?: JsonValue;
}

export interface DiffResult {
  changes: Change[];
  truncated: boolean;
}

export function diffJson(before: JsonValue | undefined, after: JsonValue | undefined, limit = 2000): DiffResult {
  const changes: Change[] = [];
  let truncated = false;
  const push = (c: Change) => {
    if (changes.length >= limit) truncated = true;
    else changes.push(c);
  };
  const walk = (a: JsonValue | undefined, b: JsonValue | undefined, path: (string | number)[]): void => {
    if (truncated || a === b) return;
    if (a === undefined) {
      push({ path, kind: 'added', after: b });
      return;
    }
    if (b === undefined) {
      push({ path, kind: 'removed', before: a });
      return;
    }
    if (Array.isArray(a) && Array.isArray(b)) {
      const n = Math.max(a.length, b.length);
      for (let i = 0; i < n; i++) walk(a[i], b[i], [...path, i]);
      return;
    }
    if (isJsonObject(a) && isJsonObject(b)) {
      const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
      for (const k of [...keys].sort()) {
        const av = Object.prototype.hasOwnProperty.call(a, k) ? a[k] : undefined;
        const bv = Object.prototype.hasOwnProperty.call(b, k) ? b[k] : undefined;
        walk(av, bv, [...path, k]);
      }
      return;
    }
    if (!isContainer(a) && !isContainer(b) && jsonEqual(a, b)) return;
    push({ path, kind: 'changed', before: a, after: b });
  };
  walk(before, after, []);
  return { changes, truncated };
}

/** Display form of a path: messages[3].content */
export function formatPath(path: readonly (string | number)[]): string {
  if (path.length === 0) return '(root)';
  let s = '';
  for (const p of path) {
    if (typeof p === 'number') s += `[${p}]`;
    else if (/^[A-Za-z_$][\w$]*$/.test(p)) s += (s ? '.' : '') + p;
    else s += `[${JSON.stringify(p)}]`;
  }
  return s;
}
