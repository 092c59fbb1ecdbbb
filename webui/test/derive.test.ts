// The derived run view from a recorded demo session: node visits, parallel
// blocks, nested LLM streams and tool calls, edges taken; the nested diff;
// backfill paging; verification under load.
import { describe, expect, test } from 'vitest';
import { decodeRecords } from '../src/lib/decode';
import { buildBatch } from '../src/lib/frames';
import { diffJson, formatPath } from '../src/lib/diff';
import { parseJson } from '../src/lib/json';
import { Backfiller } from '../src/store/backfill';
import { END, START, edgesAt, nodesAt, stepCursor } from '../src/store/derive';
import { RunStore } from '../src/store/store';
import { CursorBook } from '../src/conn/cursors';
import { InlineDecoder } from '../src/worker/protocol';
import { asRecords, exampleRun, MemoryStorage, readCorpus, readSession, sessionRecords } from './helpers';

// A recorded demo session plus one complete 26-node research run
// (`dashstream produce --seed 11 --runs 1 --shape large --out`).
const session = [...sessionRecords(readSession('test/fixtures/session.frames')), ...readCorpus('test/fixtures/large-run.corpus').map((r) => ({ ...r, partition: r.partition + 10 }))];

async function loaded(): Promise<RunStore> {
  const store = new RunStore({ schedule: (fn) => setTimeout(fn, 0), verifier: { budgetMs: 1000, maxBacklog: 1_000_000 } });
  const f = await decodeRecords(session, 0);
  store.applyLive(f.records);
  return store;
}

describe('derived view of real runs', () => {
  test('visits, nesting, parallel blocks and edges', async () => {
    const store = await loaded();
    const runs = [...store.runs.values()].map((r) => ({ r, d: r.derive() }));
    const research = runs.find(({ d }) => d.graphName === 'research_report' && d.steps.some((s) => s.kind === 'parallel'));
    expect(research, 'a research_report run with a parallel block').toBeDefined();
    const d = research!.d;
    const par = d.steps.find((s) => s.kind === 'parallel')!;
    expect(par.branches?.length).toBeGreaterThan(1);
    // Edges into each branch and out of each branch into the node after the block.
    const after = d.steps[par.index + 1];
    if (after && after.kind === 'node') {
      for (const b of par.branches ?? []) expect(d.edges.some((e) => e.from === b && e.to === after.node)).toBe(true);
    }
    // LLM streams and tool calls sit under their visits.
    const withLlm = runs.flatMap(({ d }) => d.steps).filter((s) => s.children.some((c) => c.kind === 'llm'));
    expect(withLlm.length).toBeGreaterThan(3);
    const llm = withLlm[0]!.children.find((c) => c.kind === 'llm')!;
    expect(llm.kind === 'llm' && llm.text.length > 0 && llm.chunks > 0).toBe(true);
    const withTool = runs.flatMap(({ d }) => d.steps).filter((s) => s.children.some((c) => c.kind === 'tool'));
    expect(withTool.length).toBeGreaterThan(0);
    // Visit numbers count loops.
    for (const { d } of runs) {
      const seen = new Map<string, number>();
      for (const s of d.steps.filter((x) => x.kind === 'node')) {
        seen.set(s.node, (seen.get(s.node) ?? 0) + 1);
        expect(s.visit).toBe(seen.get(s.node));
      }
    }
  });

  test('node statuses at a cursor follow the visits', async () => {
    const store = await loaded();
    for (const run of store.runs.values()) {
      const d = run.derive();
      if (d.status !== 'completed') continue;
      const end = nodesAt(d.steps, d.lastSeq);
      for (const [name, v] of end) if (name !== START && name !== END) expect(['completed', 'error']).toContain(v.status);
      // In the middle of a visit its node is active.
      const mid = d.steps.find((s) => s.kind === 'node' && s.endSeq !== undefined && s.endSeq > s.startSeq);
      if (mid) expect(nodesAt(d.steps, mid.startSeq).get(mid.node)?.status).toBe('active');
      // Edge counts only grow with the cursor.
      let prev = 0;
      for (const s of d.steps) {
        const n = [...edgesAt(d.edges, stepCursor(s)).values()].reduce((a, b) => a + b, 0);
        expect(n).toBeGreaterThanOrEqual(prev);
        prev = n;
      }
    }
  });

  test('failed runs end in an error visit', async () => {
    const store = await loaded();
    for (const run of store.runs.values()) {
      const d = run.derive();
      if (d.status !== 'error') continue;
      const last = d.steps.filter((s) => s.kind === 'node').pop()!;
      expect(last.status).toBe('error');
      expect(last.error).toBeTruthy();
      expect(d.lastError).toBe(last.error);
    }
  });
});

describe('nested diff', () => {
  test('paths, kinds and shared subtrees', () => {
    const a = parseJson('{"a":{"b":[1,2],"c":"x"},"d":1,"keep":{"big":[1,2,3]}}') as Record<string, unknown>;
    const b = { ...(parseJson('{"a":{"b":[1,3,4]},"e":true}') as Record<string, unknown>), keep: a.keep };
    const r = diffJson(a as never, b as never);
    expect(r.changes.map((c) => `${c.kind} ${formatPath(c.path)}`)).toEqual([
      'changed a.b[1]',
      'added a.b[2]',
      'removed a.c',
      'removed d',
      'added e',
    ]);
  });
});

describe('backfill', () => {
  test('pages through the records API without touching the live cursors', async () => {
    const store = new RunStore({ schedule: (fn) => setTimeout(fn, 0) });
    const cursors = new CursorBook(new MemoryStorage(), 0);
    cursors.load('ns');
    cursors.commit([[0, 5n]]);
    const recs = asRecords(exampleRun('bf'), 0, 1000);
    const pages = [recs.slice(0, 6), recs.slice(6, 12), recs.slice(12)];
    const seen: string[] = [];
    const bf = new Backfiller(
      store,
      () => new InlineDecoder(),
      async (_t, after) => {
        seen.push(after);
        const i = after === '' ? 0 : Number(after);
        const body = buildBatch(pages[i]!);
        return { body: body.slice().buffer, more: i + 1 < pages.length, next: String(i + 1) };
      },
    );
    bf.ensure('bf');
    for (let i = 0; i < 50 && store.get('bf')!.backfill.state !== 'done'; i++) await new Promise((r) => setTimeout(r, 5));
    const run = store.get('bf')!;
    expect(run.backfill.state).toBe('done');
    expect(seen).toEqual(['', '1', '2']);
    expect(run.messageCount).toBe(15);
    expect(run.derive().status).toBe('completed');
    expect(cursors.toResume()).toEqual({ '0': '5' });
  });
});

describe('backfill handover to the live stream', () => {
  test('a backfill that ends before the live stream starts asks again for what follows', async () => {
    const store = new RunStore({ schedule: (fn) => setTimeout(fn, 0) });
    const recs = asRecords(exampleRun('ho'), 0, 1000);
    // The server has 8 records when the backfill starts; 4 more are
    // committed before the live stream's starting point ("latest").
    let committed = 8;
    let liveSince: number | undefined;
    let clock = 0;
    const calls: string[] = [];
    const bf = new Backfiller(
      store,
      () => new InlineDecoder(),
      async (_t, after) => {
        calls.push(after);
        const from = after === '' ? 0 : Number(after);
        const body = buildBatch(recs.slice(from, committed));
        if (calls.length === 1) {
          // Meanwhile: more records, then the socket goes live after them.
          committed = 12;
          liveSince = ++clock;
        }
        return { body: body.slice().buffer, more: false, next: String(Math.max(from, committed === 12 && calls.length === 1 ? 8 : committed)) };
      },
      { liveSince: () => liveSince, tailPollMs: 1, now: () => clock },
    );
    bf.ensure('ho');
    for (let i = 0; i < 100 && store.get('ho')!.backfill.state !== 'done'; i++) await new Promise((r) => setTimeout(r, 5));
    expect(store.get('ho')!.backfill.state).toBe('done');
    expect(calls).toEqual(['', '8']);
    expect(store.get('ho')!.messageCount).toBe(12);
  });
});

describe('verification under load', () => {
  test('older versions are deferred, the newest checked, and all of a pinned run', async () => {
    const store = new RunStore({ schedule: (fn) => setTimeout(fn, 0), verifier: { budgetMs: 1000, maxBacklog: 1 } });
    const f = await decodeRecords(asRecords(exampleRun('v')), 0);
    store.applyLive(f.records);
    await store.verifier.drain();
    const states = store.get('v')!.derive().states.filter((s) => s.expected);
    expect(states.map((s) => s.verify)).toEqual(['deferred', 'deferred', 'deferred', 'ok']);
    store.pin('v');
    await store.verifier.drain();
    expect(states.map((s) => s.verify)).toEqual(['ok', 'ok', 'ok', 'ok']);
  });
});
