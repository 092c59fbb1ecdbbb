import { describe, expect, test } from 'vitest';
import { CursorBook } from '../src/conn/cursors';
import { MemoryStorage } from './helpers';

describe('cursor book', () => {
  test('keyed by namespace, monotonic, int64-exact', () => {
    const s = new MemoryStorage();
    const c = new CursorBook(s, 0);
    expect(c.load('ns-a')).toBe(false);
    c.commit([[0, 5n], [1, 9223372036854775000n]]);
    c.commit([[0, 3n]]); // never backwards
    c.flush();
    expect(c.toResume()).toEqual({ '0': '5', '1': '9223372036854775000' });
    const d = new CursorBook(s, 0);
    expect(d.load('ns-b')).toBe(false);
    expect(d.load('ns-a')).toBe(true);
    expect(d.toResume()).toEqual({ '0': '5', '1': '9223372036854775000' });
  });
  test('seeded from replay_complete{mode:"latest"}', () => {
    const c = new CursorBook(new MemoryStorage(), 0);
    c.load('ns');
    c.seed({ '0': '41', '1': 7, '2': '-1', x: '3' });
    expect(c.toResume()).toEqual({ '0': '41', '1': '7' });
  });
  test('garbage in storage is ignored', () => {
    const s = new MemoryStorage();
    s.setItem('dashstream:cursors:v1:ns', '{"v":1,"offsets":{"0":"12","1":"abc","-2":"3","3":4}}');
    const c = new CursorBook(s, 0);
    expect(c.load('ns')).toBe(true);
    expect(c.toResume()).toEqual({ '0': '12' });
    s.setItem('dashstream:cursors:v1:ns', 'not json');
    expect(new CursorBook(s, 0).load('ns')).toBe(false);
  });
  test('drop forgets the namespace; old namespaces are pruned', () => {
    const s = new MemoryStorage();
    const c = new CursorBook(s, 0);
    for (let i = 0; i < 12; i++) {
      c.load(`ns${i}`);
      c.commit([[0, BigInt(i)]]);
      c.flush();
    }
    expect([...s.map.keys()].filter((k) => k.startsWith('dashstream:cursors:v1:ns')).length).toBe(8);
    c.drop();
    expect(s.getItem('dashstream:cursors:v1:ns11')).toBeNull();
  });
});
