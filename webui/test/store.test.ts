// The client store fed with recorded and synthetic frame sequences: gaps,
// reorders, duplicates, backfill, state reconstruction and the hash check.
import { describe, expect, test } from 'vitest';
import { decodeRecords } from '../src/lib/decode';
import { buildBatch, type RawRecord } from '../src/lib/frames';
import { canonicalJson, stateHash } from '../src/lib/canonical';
import { RunStore } from '../src/store/store';
import { edgesAt, nodesAt, stepCursor, versionAt, type StateVersion } from '../src/store/derive';
import { asRecords, exampleRun, H, readCorpus, readSession, S, sessionRecords } from './helpers';
import { parseJson } from '../src/lib/json';

const session = sessionRecords(readSession('test/fixtures/session.frames'));

function newStore(): RunStore {
  return new RunStore({ schedule: (fn) => setTimeout(fn, 0), verifier: { budgetMs: 1000, maxBacklog: 1_000_000 } });
}

async function applyAll(store: RunStore, recs: RawRecord[], chunk = 7): Promise<void> {
  for (let i = 0; i < recs.length; i += chunk) {
    const part = recs.slice(i, i + chunk);
    const f = await decodeRecords(part, 0);
    store.applyLive(f.records, f.errors);
  }
  await store.verifier.drain();
}

/** Thread → its Kafka records (in offset order) for the recorded session. */
async function byThread(recs: RawRecord[]): Promise<Map<string, RawRecord[]>> {
  const out = new Map<string, RawRecord[]>();
  for (const r of recs) {
    const f = await decodeRecords([r], 0);
    const threads = new Set(f.records.map((x) => x.thread));
    for (const t of threads) {
      const l = out.get(t) ?? [];
      l.push(r);
      out.set(t, l);
    }
  }
  return out;
}

function allVerified(store: RunStore) {
  let ok = 0;
  let bad = 0;
  for (const run of store.runs.values()) {
    for (const v of run.derive().states) {
      if (v.verify === 'ok') ok++;
      if (v.verify === 'mismatch' || v.verify === 'error') bad++;
    }
  }
  return { ok, bad };
}

describe('the §6 example run', () => {
  test('state chain, hashes, steps, edges and node statuses', async () => {
    const store = newStore();
    await applyAll(store, asRecords(exampleRun()), 1);
    const run = store.get('t-42');
    expect(run).toBeDefined();
    const d = run!.derive();
    expect(d.graphName).toBe('research_pipeline');
    expect(d.status).toBe('completed');
    expect(d.states.map((v) => [v.seq, v.source, v.verify])).toEqual([
      [1n, 'initial', 'none'],
      [3n, 'full', 'ok'],
      [7n, 'full', 'ok'],
      [11n, 'patch', 'ok'],
      [14n, 'empty', 'ok'],
    ]);
    expect(canonicalJson(d.states[3]!.state!)).toBe(S.S3);
    expect(await stateHash(versionAt(d.states, 12n)!.state!)).toBe(H.S3);
    expect(canonicalJson(versionAt(d.states, 6n)!.state!)).toBe(S.S1);
    expect(d.steps.map((s) => `${s.kind}:${s.node}:${s.status}`)).toEqual([
      'start:__start__:completed',
      'node:planner:completed',
      'node:researcher:completed',
      'node:writer:completed',
      'end:__end__:completed',
    ]);
    expect(d.steps.map((s) => stepCursor(s))).toEqual([1n, 4n, 8n, 12n, 15n]);
    expect(d.steps[1]!.durUs).toBe(120000);
    expect(d.edges.map((e) => `${e.from}→${e.to}`)).toEqual([
      '__start__→planner',
      'planner→researcher',
      'researcher→writer',
      'writer→__end__',
    ]);
    const at6 = nodesAt(d.steps, 6n);
    expect(at6.get('planner')?.status).toBe('completed');
    expect(at6.get('researcher')?.status).toBe('active');
    expect(at6.get('writer')).toBeUndefined();
    expect(edgesAt(d.edges, 6n).get('planner→researcher')).toBe(1);
    const integ = run!.integrity();
    expect(integ.ok).toBe(true);
    expect(run!.messageCount).toBe(15);
  });

  test('a tampered state is a mismatch, scoped to its run, until a full state', async () => {
    const store = newStore();
    const vals = exampleRun('bad');
    // Seq 11 (ops) claims the hash of S2: the applied state will not match.
    const recs = asRecords(vals);
    const good = asRecords(exampleRun('good'), 1, 500);
    const { stateDiffMsg, frame } = await import('./helpers');
    recs[10] = { ...recs[10]!, payload: frame(stateDiffMsg('bad', 11, H.S2, { ops: [{ op: 2, path: '/step', value: '3' }] })) };
    await applyAll(store, [...recs, ...good], 1);
    const bad = store.get('bad')!.integrity();
    expect(bad.mismatches.map((m) => m.seq)).toEqual([11n, 14n]);
    expect(bad.staleSince).toBe(11n);
    expect(store.get('good')!.integrity().ok).toBe(true);
  });
});

describe('recorded session (dashstream demo)', () => {
  test('every run reconstructs and every state hash verifies', async () => {
    const store = newStore();
    await applyAll(store, session, 13);
    expect(store.runs.size).toBeGreaterThan(3);
    const { ok, bad } = allVerified(store);
    expect(bad).toBe(0);
    expect(ok).toBeGreaterThan(50);
    for (const run of store.runs.values()) {
      const i = run.integrity();
      expect(i.gaps).toEqual([]);
      expect(i.ok).toBe(true);
      // Message count = distinct Kafka records touching the run.
      const keys = new Set<string>();
      for (const r of run.records()) if (r.cursor) keys.add(`${r.cursor.p}:${r.cursor.o}`);
      for (const r of run.unsequenced) if (r.cursor) keys.add(`${r.cursor.p}:${r.cursor.o}`);
      expect(run.messageCount).toBe(keys.size);
    }
  });

  test('gap: a lost record shows on its run only, with the range; cleared when it arrives', async () => {
    const threads = await byThread(session);
    // A run with ops diffs (so later states depend on the lost one).
    const [thread, recs] = [...threads.entries()].find(([, l]) => l.length > 40)!;
    const store = newStore();
    const dropIdx = Math.floor(recs.length / 2);
    const dropped = recs[dropIdx]!;
    const rest = session.filter((r) => r !== dropped);
    await applyAll(store, rest);
    const run = store.get(thread)!;
    const f = await decodeRecords([dropped], 0);
    const seqs = f.records.filter((r) => r.thread === thread).map((r) => r.seq);
    const integ = run.integrity();
    expect(integ.gaps).toEqual([{ from: seqs[0], to: seqs[seqs.length - 1] }]);
    expect(integ.ok).toBe(false);
    for (const other of store.runs.values()) if (other !== run) expect(other.integrity().gaps).toEqual([]);
    // The record arrives late (backfill): the gap is gone and every state verifies.
    store.applyBackfill(thread, f.records);
    await store.verifier.drain();
    const after = run.integrity();
    expect(after.gaps).toEqual([]);
    expect(after.ok).toBe(true);
    expect(allVerified(store).bad).toBe(0);
  });

  test('gap before a state diff: "stale since" until a full state arrives', async () => {
    const store = newStore();
    const recs = asRecords(exampleRun('g'));
    // Lose seq 6 (NODE_START researcher); the full state at seq 7 clears staleness.
    await applyAll(store, recs.filter((_, i) => i !== 5), 1);
    const i = store.get('g')!.integrity();
    expect(i.gaps).toEqual([{ from: 6n, to: 6n }]);
    expect(i.staleSince).toBeUndefined(); // S2 arrived in full after the gap
    // Lose seq 7 itself (the full state): the patch at 11 cannot be trusted.
    const store2 = newStore();
    await applyAll(store2, recs.filter((_, i) => i !== 6), 1);
    const j = store2.get('g')!.integrity();
    expect(j.gaps).toEqual([{ from: 7n, to: 7n }]);
    expect(j.staleSince).toBe(7n);
    expect(j.mismatches.length).toBeGreaterThan(0);
  });

  test('reorder: records swapped in transit give the same states', async () => {
    const threads = await byThread(session);
    const [thread, recs] = [...threads.entries()].find(([, l]) => l.length > 40)!;
    const inOrder = newStore();
    await applyAll(inOrder, recs, 1);
    const swapped = recs.slice();
    for (let i = 5; i + 1 < swapped.length; i += 9) [swapped[i], swapped[i + 1]] = [swapped[i + 1]!, swapped[i]!];
    const store = newStore();
    await applyAll(store, swapped, 1);
    const a = inOrder.get(thread)!.derive();
    const b = store.get(thread)!.derive();
    expect(store.get(thread)!.reorders).toBeGreaterThan(0);
    expect(b.states.map((v) => canonicalJson(v.state ?? null))).toEqual(a.states.map((v) => canonicalJson(v.state ?? null)));
    expect(b.steps.map((s) => s.node)).toEqual(a.steps.map((s) => s.node));
    expect(allVerified(store).bad).toBe(0);
    expect(store.get(thread)!.integrity().gaps).toEqual([]);
  });

  test('duplicates: redelivered frames change nothing', async () => {
    const store = newStore();
    await applyAll(store, session);
    const counts = new Map([...store.runs.values()].map((r) => [r.thread, [r.messageCount, r.derive().states.length]]));
    await applyAll(store, session.slice(0, Math.floor(session.length / 2)));
    for (const r of store.runs.values()) {
      expect([r.messageCount, r.derive().states.length]).toEqual(counts.get(r.thread));
      expect(r.integrity().ok).toBe(true);
    }
    expect([...store.runs.values()].reduce((n, r) => n + r.duplicates, 0)).toBeGreaterThan(0);
  });

  test('backfill completes a run first seen in the middle, without a gap', async () => {
    const threads = await byThread(session);
    const [thread, recs] = [...threads.entries()].find(([, l]) => l.length > 40)!;
    const store = newStore();
    const half = Math.floor(recs.length / 2);
    await applyAll(store, recs.slice(half), 3);
    const run = store.get(thread)!;
    expect(run.derive().hasStart).toBe(false);
    const partial = run.derive().states;
    // Without its beginning the state is unknown until a full state arrives.
    expect(partial.length === 0 || partial[0]!.source === 'full' || partial[0]!.verify === 'unknown').toBe(true);
    // Backfill pages (the records API returns them in thread order).
    run.backfill.state = 'loading';
    for (let i = 0; i < recs.length; i += 10) {
      const f = await decodeRecords(recs.slice(i, i + 10), 0);
      store.applyBackfill(thread, f.records);
    }
    run.backfill.state = 'done';
    await store.verifier.drain();
    const d = run.derive();
    expect(d.hasStart).toBe(true);
    expect(run.integrity().ok).toBe(true);
    expect(run.integrity().stateUnknown).toBe(false);
    expect(run.messageCount).toBe(recs.length);
    expect(d.states.every((v: StateVersion) => v.verify !== 'mismatch' && v.verify !== 'unknown')).toBe(true);
  });

  test('an EventBatch touching several threads counts once per thread', async () => {
    const store = newStore();
    const batchRecs = session.filter((r) => r.payload.length > 0);
    await applyAll(store, batchRecs.slice(0, 200));
    let inBatch = 0;
    for (const run of store.runs.values()) for (const r of run.records()) if (r.inBatch) inBatch++;
    expect(inBatch).toBeGreaterThanOrEqual(0);
  });
});

describe('a complete 26-node research run (produce --shape large)', () => {
  test('reconstructs, every state hash verifies, no gaps', async () => {
    const store = newStore();
    await applyAll(store, readCorpus('test/fixtures/large-run.corpus'), 11);
    expect(store.runs.size).toBe(1);
    const run = [...store.runs.values()][0]!;
    const d = run.derive();
    expect(d.graphName).toBe('research_report');
    expect(d.schema?.nodes.length).toBe(26);
    expect(d.status === 'completed' || d.status === 'error').toBe(true);
    expect(d.states.filter((v) => v.expected).every((v) => v.verify === 'ok')).toBe(true);
    expect(run.integrity().ok).toBe(true);
  });
});

describe('state viewer data', () => {
  test('versionAt picks the state in force at a sequence', () => {
    const mk = (seq: bigint): StateVersion => ({ seq, index: 0, state: parseJson(`{"s":${seq}}`), source: 'full', expected: '', verify: 'none' });
    const states = [mk(1n), mk(5n), mk(9n)];
    expect(versionAt(states, 0n)).toBeUndefined();
    expect(versionAt(states, 1n)?.seq).toBe(1n);
    expect(versionAt(states, 8n)?.seq).toBe(5n);
    expect(versionAt(states, 100n)?.seq).toBe(9n);
    expect(buildBatch([]).length).toBe(2);
  });
});
