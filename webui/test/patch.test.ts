import { describe, expect, test } from 'vitest';
import jsonpatch, { type Operation } from 'fast-json-patch';
import { applyPatch, parsePointer, PatchError, type PatchOp } from '../src/lib/patch';
import { parseJson, type JsonValue } from '../src/lib/json';

const J = (s: string) => parseJson(s);

// RFC 6902 Appendix A.
const rfc: { name: string; doc: string; patch: PatchOp[]; want?: string; error?: boolean }[] = [
  { name: 'A.1 add object member', doc: '{"foo":"bar"}', patch: [{ op: 'add', path: '/baz', value: 'qux' }], want: '{"baz":"qux","foo":"bar"}' },
  { name: 'A.2 add array element', doc: '{"foo":["bar","baz"]}', patch: [{ op: 'add', path: '/foo/1', value: 'qux' }], want: '{"foo":["bar","qux","baz"]}' },
  { name: 'A.3 remove object member', doc: '{"baz":"qux","foo":"bar"}', patch: [{ op: 'remove', path: '/baz' }], want: '{"foo":"bar"}' },
  { name: 'A.4 remove array element', doc: '{"foo":["bar","qux","baz"]}', patch: [{ op: 'remove', path: '/foo/1' }], want: '{"foo":["bar","baz"]}' },
  { name: 'A.5 replace', doc: '{"baz":"qux","foo":"bar"}', patch: [{ op: 'replace', path: '/baz', value: 'boo' }], want: '{"baz":"boo","foo":"bar"}' },
  {
    name: 'A.6 move value',
    doc: '{"foo":{"bar":"baz","waldo":"fred"},"qux":{"corge":"grault"}}',
    patch: [{ op: 'move', from: '/foo/waldo', path: '/qux/thud' }],
    want: '{"foo":{"bar":"baz"},"qux":{"corge":"grault","thud":"fred"}}',
  },
  { name: 'A.7 move array element', doc: '{"foo":["all","grass","cows","eat"]}', patch: [{ op: 'move', from: '/foo/1', path: '/foo/3' }], want: '{"foo":["all","cows","eat","grass"]}' },
  {
    name: 'A.8 test success',
    doc: '{"baz":"qux","foo":["a",2,"c"]}',
    patch: [{ op: 'test', path: '/baz', value: 'qux' }, { op: 'test', path: '/foo/1', value: 2 }],
    want: '{"baz":"qux","foo":["a",2,"c"]}',
  },
  { name: 'A.9 test failure', doc: '{"baz":"qux"}', patch: [{ op: 'test', path: '/baz', value: 'bar' }], error: true },
  { name: 'A.10 add nested member', doc: '{"foo":"bar"}', patch: [{ op: 'add', path: '/child', value: J('{"grandchild":{}}') }], want: '{"child":{"grandchild":{}},"foo":"bar"}' },
  { name: 'A.12 add to nonexistent target', doc: '{"foo":"bar"}', patch: [{ op: 'add', path: '/baz/bat', value: 'qux' }], error: true },
  { name: 'A.14 ~ escape ordering', doc: '{"/":9,"~1":10}', patch: [{ op: 'test', path: '/~01', value: 10 }], want: '{"/":9,"~1":10}' },
  { name: 'A.15 comparing strings and numbers', doc: '{"/":9,"~1":10}', patch: [{ op: 'test', path: '/~01', value: '10' }], error: true },
  { name: 'A.16 add array value', doc: '{"foo":["bar"]}', patch: [{ op: 'add', path: '/foo/-', value: J('["abc","def"]') }], want: '{"foo":["bar",["abc","def"]]}' },
  // Strictness (json-patch-tests).
  { name: 'add index past end', doc: '{"a":[1]}', patch: [{ op: 'add', path: '/a/2', value: 3 }], error: true },
  { name: 'leading zero index', doc: '{"a":[1,2]}', patch: [{ op: 'replace', path: '/a/01', value: 3 }], error: true },
  { name: 'replace missing key', doc: '{"a":1}', patch: [{ op: 'replace', path: '/b', value: 3 }], error: true },
  { name: 'remove missing key', doc: '{"a":1}', patch: [{ op: 'remove', path: '/b' }], error: true },
  { name: 'replace root', doc: '{"a":1}', patch: [{ op: 'replace', path: '', value: J('[1]') }], want: '[1]' },
  { name: 'copy', doc: '{"a":{"b":[1]}}', patch: [{ op: 'copy', from: '/a/b', path: '/c' }], want: '{"a":{"b":[1]},"c":[1]}' },
  { name: 'move into own child', doc: '{"a":{"b":1}}', patch: [{ op: 'move', from: '/a', path: '/a/c' }], error: true },
  { name: 'bad escape', doc: '{"a":1}', patch: [{ op: 'add', path: '/~2', value: 1 }], error: true },
  { name: 'numeric key on object', doc: '{"1":"x"}', patch: [{ op: 'replace', path: '/1', value: 'y' }], want: '{"1":"y"}' },
  { name: 'test 1 vs 1.0 (serde equality)', doc: '{"a":1}', patch: [{ op: 'test', path: '/a', value: J('1.0') }], error: true },
];

describe('RFC 6902', () => {
  for (const c of rfc) {
    test(c.name, () => {
      const doc = J(c.doc);
      const frozen = JSON.stringify(doc);
      if (c.error) {
        expect(() => applyPatch(doc, c.patch)).toThrow(PatchError);
      } else {
        const out = applyPatch(doc, c.patch);
        expect(out).toEqual(J(c.want as string));
      }
      expect(JSON.stringify(doc)).toBe(frozen); // never mutated
    });
  }
  test('__proto__ is an ordinary key', () => {
    const out = applyPatch(J('{}'), [{ op: 'add', path: '/__proto__', value: J('{"polluted":true}') }]) as Record<string, unknown>;
    expect(Object.prototype.hasOwnProperty.call(out, '__proto__')).toBe(true);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(() => applyPatch(J('{}'), [{ op: 'add', path: '/constructor/prototype/x', value: 1 }])).toThrow(PatchError);
  });
  test('pointer parsing', () => {
    expect(parsePointer('/a~1b/c~0d/')).toEqual(['a/b', 'c~d', '']);
    expect(() => parsePointer('a')).toThrow();
  });
  test('structural sharing: untouched subtrees are the same objects', () => {
    const doc = J('{"big":{"x":[1,2,3]},"msgs":[{"a":1},{"b":2}],"n":0}') as Record<string, JsonValue>;
    const out = applyPatch(doc, [
      { op: 'add', path: '/msgs/2', value: J('{"c":3}') },
      { op: 'replace', path: '/n', value: 1 },
      { op: 'add', path: '/msgs/3', value: J('{"d":4}') },
    ]) as Record<string, JsonValue>;
    expect(out.big).toBe(doc.big);
    expect((out.msgs as JsonValue[])[0]).toBe((doc.msgs as JsonValue[])[0]);
    expect((out.msgs as JsonValue[]).length).toBe(4);
    expect((doc.msgs as JsonValue[]).length).toBe(2);
  });
  test('a failing op applies nothing', () => {
    const doc = J('{"a":[1]}');
    expect(() => applyPatch(doc, [{ op: 'add', path: '/a/-', value: 2 }, { op: 'remove', path: '/zz' }])).toThrow(/op 1/);
    expect(doc).toEqual(J('{"a":[1]}'));
  });
});

// Randomised agreement with fast-json-patch (a well-known implementation).
function rng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

describe('agrees with fast-json-patch', () => {
  test('random add/remove/replace/move/copy patches', () => {
    const r = rng(42);
    const pick = <T,>(a: T[]): T => a[Math.floor(r() * a.length)] as T;
    const paths = (v: unknown, base = ''): string[] => {
      const out: string[] = [];
      if (Array.isArray(v)) v.forEach((x, i) => out.push(`${base}/${i}`, ...paths(x, `${base}/${i}`)));
      else if (v && typeof v === 'object')
        for (const [k, x] of Object.entries(v)) out.push(`${base}/${k}`, ...paths(x, `${base}/${k}`));
      return out;
    };
    for (let iter = 0; iter < 300; iter++) {
      let doc: JsonValue = J('{"a":[1,2,{"b":"c"}],"d":{"e":[true,null]},"f":"g"}');
      for (let step = 0; step < 6; step++) {
        const ps = paths(doc);
        if (ps.length === 0) break;
        const p = pick(ps);
        const kind = pick(['add', 'remove', 'replace', 'move', 'copy'] as const);
        const value = pick<JsonValue>([1, 'x', null, J('{"k":[1]}'), J('[2,3]')]);
        let op: PatchOp;
        if (kind === 'move' || kind === 'copy') {
          const to = pick(ps);
          if (to.startsWith(p + '/') || to === p) continue;
          op = { op: kind, from: p, path: to };
        } else op = kind === 'remove' ? { op: 'remove', path: p } : { op: kind, path: p, value };
        const theirs = jsonpatch.deepClone(doc) as object;
        let want: unknown;
        let theyFailed = false;
        try {
          want = jsonpatch.applyPatch(theirs, [op as Operation], true, false).newDocument;
        } catch {
          theyFailed = true;
        }
        if (theyFailed) continue;
        const before = JSON.stringify(doc);
        const got = applyPatch(doc, [op]);
        expect(JSON.stringify(doc)).toBe(before);
        expect(got).toEqual(want);
        doc = got;
      }
    }
  });
});
