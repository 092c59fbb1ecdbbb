import { describe, expect, test } from 'vitest';
import { JsonFloat, needsLosslessParse, parseJson, jsonEqual, stringifyPretty } from '../src/lib/json';

describe('lossless JSON', () => {
  test('fast path for ordinary documents', () => {
    expect(needsLosslessParse('{"a":[1,2.5,"1.0",-3],"b":"x"}')).toBe(false);
    expect(parseJson('{"a":[1,2.5]}')).toEqual({ a: [1, 2.5] });
  });
  test('integral floats, -0 and big integers are kept', () => {
    expect(needsLosslessParse('{"a":1.0}')).toBe(true);
    expect(needsLosslessParse('[-0]')).toBe(true);
    expect(needsLosslessParse('[9007199254740993]')).toBe(true);
    const v = parseJson('{"a":1.0,"b":-0,"c":9007199254740993,"d":"1.0","e":2}') as Record<string, unknown>;
    expect(v.a).toBeInstanceOf(JsonFloat);
    expect((v.b as JsonFloat).value).toBe(-0);
    expect(v.c).toBe(9007199254740993n);
    expect(v.d).toBe('1.0');
    expect(v.e).toBe(2);
  });
  test('strings with escapes and digits inside are not numbers', () => {
    expect(needsLosslessParse('["x\\"1.0\\"", "9007199254740993"]')).toBe(false);
    expect(parseJson('["a\\u0041\\n", {"k\\"":[]}, 1.0]')).toEqual(['aA\n', { 'k"': [] }, new JsonFloat(1)]);
  });
  test('__proto__ stays an own key', () => {
    const v = parseJson('{"__proto__":{"polluted":1.0}}') as Record<string, unknown>;
    expect(Object.prototype.hasOwnProperty.call(v, '__proto__')).toBe(true);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
  test('invalid documents throw', () => {
    for (const bad of ['{', '[1,]', '{"a":1.}', '01', '1 2', '"\u0001"', 'nul', '[1}']) {
      expect(() => parseJson(bad)).toThrow();
      expect(() => parseJson(`[1.0,${bad}]`)).toThrow(); // the lossless parser
    }
  });
  test('serde equality: 1 and 1.0 differ', () => {
    expect(jsonEqual(parseJson('[1]'), parseJson('[1.0]'))).toBe(false);
    expect(jsonEqual(parseJson('{"a":[1.0,{"b":2}]}'), parseJson('{"a":[1.0,{"b":2}]}'))).toBe(true);
  });
  test('pretty printing keeps the literal kind', () => {
    expect(stringifyPretty(parseJson('{"a":1.0,"b":12345678901234567890}'))).toBe('{\n  "a": 1.0,\n  "b": 12345678901234567890\n}');
  });
});
