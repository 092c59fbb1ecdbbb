// The apply pipeline: commit-after-apply, ordering, the generation guard
// (reconnect in the middle of a decode), the schema gate and decode failures.
import { describe, expect, test, vi } from 'vitest';
import { Pipeline, type ControlMessage } from '../src/conn/pipeline';
import { CursorBook } from '../src/conn/cursors';
import { RunStore } from '../src/store/store';
import { InlineDecoder } from '../src/worker/protocol';
import { EventType } from '../src/gen/dashstream_pb';
import { asRecords, eventMsg, exampleRun, frame, ManualDecoder, MemoryStorage, oneRecordFrame, settle, toArrayBuffer } from './helpers';
import { buildBatch } from '../src/lib/frames';

function setup(decoder = new ManualDecoder()) {
  const store = new RunStore({ schedule: (fn) => setTimeout(fn, 0) });
  const cursors = new CursorBook(new MemoryStorage(), 0);
  cursors.load('ns');
  const controls: ControlMessage[] = [];
  const fatals: string[] = [];
  const p = new Pipeline({
    decoder,
    store,
    cursors,
    onControl: (m) => controls.push(m),
    onFatal: (r) => fatals.push(r),
  });
  p.reset(1);
  return { store, cursors, p, decoder, controls, fatals };
}

const recs = asRecords(exampleRun('t-1'), 0, 100);

describe('commit after apply', () => {
  test('offsets are committed only once their records are applied, in order', async () => {
    const { store, cursors, p, decoder } = setup();
    const seen: [string | undefined, number][] = [];
    const apply = store.applyLive.bind(store);
    vi.spyOn(store, 'applyLive').mockImplementation((r, e) => {
      // At apply time the frame's own offset is not committed yet.
      seen.push([cursors.toResume()['0'], r.length]);
      apply(r, e);
    });
    p.binary(1, oneRecordFrame(recs[0]!));
    p.binary(1, oneRecordFrame(recs[1]!));
    p.binary(1, oneRecordFrame(recs[2]!));
    // The third frame decodes first: nothing may be applied or committed.
    decoder.jobs[2]!.resolve();
    await settle();
    expect(store.get('t-1')).toBeUndefined();
    expect(cursors.has()).toBe(false);
    decoder.jobs[0]!.resolve();
    await settle();
    expect(store.get('t-1')!.records().map((r) => r.seq)).toEqual([1n]);
    expect(cursors.toResume()).toEqual({ '0': '100' });
    decoder.jobs[1]!.resolve();
    await settle();
    expect(store.get('t-1')!.records().map((r) => r.seq)).toEqual([1n, 2n, 3n]);
    expect(cursors.toResume()).toEqual({ '0': '102' });
    expect(seen).toEqual([[undefined, 1], ['100', 1], ['101', 1]]);
  });

  test('control frames keep their place after the frames before them', async () => {
    const { p, decoder, controls, cursors } = setup();
    p.binary(1, oneRecordFrame(recs[0]!));
    p.text(1, JSON.stringify({ type: 'replay_complete', mode: 'cursor', totalReplayed: 1 }));
    await settle();
    expect(controls).toEqual([]);
    decoder.jobs[0]!.resolve();
    await settle();
    expect(controls.map((c) => c.type)).toEqual(['replay_complete']);
    expect(cursors.toResume()).toEqual({ '0': '100' });
  });

  test('cursors survive a reload only as far as records were applied', async () => {
    const storage = new MemoryStorage();
    const store = new RunStore({ schedule: (fn) => setTimeout(fn, 0) });
    const cursors = new CursorBook(storage, 0);
    cursors.load('ns');
    const decoder = new ManualDecoder();
    const p = new Pipeline({ decoder, store, cursors, onControl: () => {}, onFatal: () => {} });
    p.reset(1);
    for (const r of recs.slice(0, 5)) p.binary(1, oneRecordFrame(r));
    for (const j of decoder.jobs.slice(0, 3)) j.resolve();
    await settle();
    cursors.flush();
    // "Reload": a new book reads what was stored.
    const again = new CursorBook(storage, 0);
    expect(again.load('ns')).toBe(true);
    expect(again.toResume()).toEqual({ '0': '102' });
  });
});

describe('generation guard', () => {
  test('a reconnect in the middle of a decode drops the old frames', async () => {
    const { store, cursors, p, decoder } = setup();
    p.binary(1, oneRecordFrame(recs[0]!));
    p.binary(1, oneRecordFrame(recs[1]!));
    decoder.jobs[0]!.resolve();
    await settle();
    expect(cursors.toResume()).toEqual({ '0': '100' });
    // New connection (generation 2) while job 1 is still decoding.
    p.reset(2);
    decoder.jobs[1]!.resolve();
    await settle();
    expect(store.get('t-1')!.records().map((r) => r.seq)).toEqual([1n]);
    expect(cursors.toResume()).toEqual({ '0': '100' });
    // Frames arriving on the old socket after the switch are ignored too.
    p.binary(1, oneRecordFrame(recs[2]!));
    p.text(1, '{"type":"replay_complete"}');
    expect(decoder.jobs.length).toBe(2);
    // The new generation works.
    p.binary(2, oneRecordFrame(recs[1]!));
    decoder.jobs[2]!.resolve();
    await settle();
    expect(store.get('t-1')!.records().map((r) => r.seq)).toEqual([1n, 2n]);
    expect(cursors.toResume()).toEqual({ '0': '101' });
  });
});

describe('schema version gate', () => {
  test('a newer schema_version stops applying and committing until reconnect', async () => {
    const { store, cursors, p, decoder } = setup();
    const v2 = { partition: 0, offset: 200n, payload: frame(eventMsg('t-2', 1, EventType.GRAPH_START, '', { graph_name: 'g' }, { schemaVersion: 2 })) };
    const v1 = { partition: 0, offset: 201n, payload: frame(eventMsg('t-3', 1, EventType.GRAPH_START, '', { graph_name: 'g' })) };
    p.binary(1, oneRecordFrame(recs[0]!));
    p.binary(1, oneRecordFrame(v2));
    p.binary(1, oneRecordFrame(v1));
    for (const j of decoder.jobs) j.resolve();
    await settle();
    expect(p.schemaMismatch?.version).toBe(2);
    expect(store.get('t-2')).toBeUndefined();
    expect(store.get('t-3')).toBeUndefined(); // paused for the rest of the connection
    expect(cursors.toResume()).toEqual({ '0': '100' });
    expect(store.diagnostics.some((d) => d.code === 'SCHEMA_VERSION')).toBe(true);
    // After reconnecting to a compatible stream, applying resumes.
    p.reset(2);
    expect(p.schemaMismatch).toBeNull();
    p.binary(2, oneRecordFrame(v1));
    decoder.jobs[3]!.resolve();
    await settle();
    expect(store.get('t-3')).toBeDefined();
    expect(cursors.toResume()).toEqual({ '0': '201' });
  });
});

describe('decode failures', () => {
  test('an undecodable record restarts the connection once, then is quarantined', async () => {
    const { store, cursors, p, fatals } = setup(new InlineDecoder() as unknown as ManualDecoder);
    const bad = { partition: 0, offset: 150n, payload: new Uint8Array([0x00, 0xff, 0xff, 0xff]) };
    p.binary(1, toArrayBuffer(buildBatch([recs[0]!, bad])));
    await settle(10);
    expect(fatals.length).toBe(1);
    expect(cursors.has()).toBe(false);
    expect(store.get('t-1')).toBeUndefined();
    p.reset(2);
    p.binary(2, toArrayBuffer(buildBatch([recs[0]!, bad])));
    await settle(10);
    expect(fatals.length).toBe(1);
    expect(store.get('t-1')).toBeDefined();
    expect(cursors.toResume()).toEqual({ '0': '150' });
    expect(store.diagnostics.map((d) => d.code)).toContain('INVALID_PROTOBUF');
  });

  test('unbatched mode: cursor frames pair with binary frames', async () => {
    const { store, cursors, p, fatals, decoder } = setup();
    p.text(1, JSON.stringify({ type: 'cursor', partition: 0, offset: '100' }));
    p.binary(1, toArrayBuffer(recs[0]!.payload));
    decoder.jobs[0]!.resolve();
    await settle();
    expect(store.get('t-1')).toBeDefined();
    expect(cursors.toResume()).toEqual({ '0': '100' });
    p.binary(1, toArrayBuffer(recs[1]!.payload)); // no cursor
    expect(fatals[0]).toMatch(/cursor_pairing/);
  });

  test('the backlog is bounded', () => {
    const store = new RunStore({ schedule: (fn) => setTimeout(fn, 0) });
    const cursors = new CursorBook(null, 0);
    const fatals: string[] = [];
    const p = new Pipeline({ decoder: new ManualDecoder(), store, cursors, onControl: () => {}, onFatal: (r) => fatals.push(r), maxQueueFrames: 3 });
    p.reset(1);
    for (let i = 0; i < 5; i++) p.binary(1, oneRecordFrame(recs[i]!));
    expect(fatals[0]).toMatch(/backlog/);
  });
});
