import { createHash } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import { canonicalJson, serdeFloat, stateHash } from '../src/lib/canonical';
import { JsonFloat, parseJson } from '../src/lib/json';
import { H, S } from './helpers';

const sha = (s: string) => createHash('sha256').update(s, 'utf8').digest('hex');

describe('state hash vectors (wire-protocol §6)', () => {
  for (const k of ['S0', 'S1', 'S2', 'S3'] as const) {
    test(k, async () => {
      const v = parseJson(S[k]);
      expect(canonicalJson(v)).toBe(S[k]);
      expect(await stateHash(v)).toBe(H[k]);
      // Re-indented and keys reordered: same canonical form and hash.
      const obj = JSON.parse(S[k]) as Record<string, unknown>;
      const shuffled = Object.fromEntries(Object.entries(obj).reverse());
      const pretty = JSON.stringify(shuffled, null, 2);
      expect(await stateHash(parseJson(pretty))).toBe(H[k]);
      expect(sha(S[k])).toBe(H[k]);
    });
  }
  test('lengths', () => {
    expect([S.S0.length, S.S1.length, S.S2.length, S.S3.length]).toEqual([76, 101, 133, 175]);
  });
});

describe('canonical numbers like serde_json (vectors of wire/canonical_test.go)', () => {
  const cases: [string, string][] = [
    ['0', '0'], ['42', '42'], ['-42', '-42'],
    ['9007199254740993', '9007199254740993'], ['-9007199254740993', '-9007199254740993'],
    ['18446744073709551615', '18446744073709551615'], ['-9223372036854775808', '-9223372036854775808'],
    ['-0', '-0.0'], ['18446744073709551616', '1.8446744073709552e19'], ['-9223372036854775809', '-9.223372036854776e18'],
    ['100000000000000000000000', '1e23'],
    ['0.0', '0.0'], ['-0.0', '-0.0'], ['0e10', '0.0'], ['1.0', '1.0'], ['1.50', '1.5'], ['-2.5', '-2.5'],
    ['1e2', '100.0'], ['1E2', '100.0'], ['1e+2', '100.0'], ['0.1', '0.1'],
    ['0.30000000000000004', '0.30000000000000004'], ['123456.789e3', '123456789.0'],
    ['3.141592653589793', '3.141592653589793'], ['1e15', '1000000000000000.0'], ['1.5e15', '1500000000000000.0'],
    ['9007199254740993.0', '9007199254740992.0'], ['1.2345678901234567e15', '1234567890123456.8'],
    ['1e16', '1e16'], ['1.5e16', '1.5e16'], ['1e21', '1e21'], ['1.2345e22', '1.2345e22'],
    ['0.00001', '0.00001'], ['0.000012', '0.000012'], ['0.000001', '1e-6'], ['1e-7', '1e-7'],
    ['-1.5e-7', '-1.5e-7'], ['5e-324', '5e-324'], ['1e-400', '0.0'],
    ['1.7976931348623157e308', '1.7976931348623157e308'], ['-1.7976931348623157e308', '-1.7976931348623157e308'],
  ];
  for (const [input, want] of cases) {
    test(`${input} → ${want}`, () => {
      expect(canonicalJson(parseJson(input))).toBe(want);
      expect(canonicalJson(parseJson(`[${input}]`))).toBe(`[${want}]`);
    });
  }
  test('serdeFloat', () => {
    expect(serdeFloat(1)).toBe('1.0');
    expect(serdeFloat(0.5)).toBe('0.5');
    expect(serdeFloat(1e21)).toBe('1e21');
  });
});

describe('canonical layout', () => {
  test('keys sorted byte-wise, compact, serde escaping', () => {
    const v = parseJson('{"b":[1,2.5,-0,1e21,"\\u2028<"],"a":{"z":null,"y":true}}');
    expect(canonicalJson(v)).toBe('{"a":{"y":true,"z":null},"b":[1,2.5,-0.0,1e21,"\u2028<"]}');
  });
  test('control characters and quotes', () => {
    const v = parseJson('"\\u0001\\b\\f\\n\\r\\t\\"\\\\/é😀"');
    expect(canonicalJson(v)).toBe('"\\u0001\\b\\f\\n\\r\\t\\"\\\\/é😀"');
  });
  test('UTF-8 key order: astral sorts after U+E000..U+FFFF', () => {
    const v = parseJson('{"😀":1,"\uffee":2,"a":3}');
    expect(canonicalJson(v)).toBe('{"a":3,"\uffee":2,"😀":1}');
  });
  test('duplicate keys: last wins', () => {
    expect(canonicalJson(parseJson('{"a":1,"a":2}'))).toBe('{"a":2}');
  });
  test('cached canonical text follows structural sharing', () => {
    const a = parseJson('{"x":{"y":[1,2,3]},"z":"q"}') as Record<string, unknown>;
    const first = canonicalJson(a as never, { cache: true });
    const b = { ...a, z: 'r' };
    expect(canonicalJson(b as never, { cache: true })).toBe(first.replace('"q"', '"r"'));
  });
  test('JsonFloat and bigint', () => {
    expect(canonicalJson([new JsonFloat(2), 12345678901234567890n, 0.25])).toBe('[2.0,12345678901234567890,0.25]');
  });
});
