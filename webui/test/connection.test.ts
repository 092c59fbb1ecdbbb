// The connection state machine with a fake socket: first visit, resume,
// capped replays, epoch change (4001), backoff and "Retry now".
import { afterEach, beforeEach, describe, expect, test, vi } from 'vitest';
import { Connection, type WebSocketLike } from '../src/conn/connection';
import { CursorBook } from '../src/conn/cursors';
import type { VersionInfo } from '../src/conn/http';
import { RunStore } from '../src/store/store';
import { InlineDecoder } from '../src/worker/protocol';
import { asRecords, exampleRun, MemoryStorage, oneRecordFrame } from './helpers';

class FakeSocket implements WebSocketLike {
  binaryType = 'blob';
  readyState = 0;
  onopen: ((ev: Event) => void) | null = null;
  onclose: ((ev: CloseEvent) => void) | null = null;
  onerror: ((ev: Event) => void) | null = null;
  onmessage: ((ev: MessageEvent) => void) | null = null;
  sent: string[] = [];
  closed: [number | undefined, string | undefined] | null = null;
  readonly url: string;
  constructor(url: string) {
    this.url = url;
  }
  send(d: string) {
    this.sent.push(d);
  }
  close(code?: number, reason?: string) {
    this.closed = [code, reason];
  }
  open() {
    this.readyState = 1;
    this.onopen?.(new Event('open'));
  }
  text(o: unknown) {
    this.onmessage?.({ data: JSON.stringify(o) } as MessageEvent);
  }
  binary(b: ArrayBuffer) {
    this.onmessage?.({ data: b } as MessageEvent);
  }
  serverClose(code: number, reason = '') {
    this.onclose?.({ code, reason } as CloseEvent);
  }
}

function version(epoch: string): VersionInfo {
  return {
    git_sha: 'x', build_date: 'x', schema_version: 1, component: 'websocket-server',
    resume_namespace: `ns_${epoch}`, kafka_topic: 't', kafka_group_id: 'g', max_payload_bytes: 10485760,
    decode_error_policy: 'skip', epoch, version: 'test',
  };
}

// Decoding awaits WebCrypto digests, which complete on real time: let a few
// real macrotasks pass as well as the faked timers.
const realImmediate = globalThis.setImmediate;
const flush = async () => {
  for (let i = 0; i < 10; i++) {
    await new Promise<void>((r) => realImmediate(() => r()));
    await vi.advanceTimersByTimeAsync(0);
  }
};

/** Waits (on real time) until the pipeline has applied everything queued. */
async function drained(c: Connection): Promise<void> {
  for (let i = 0; i < 2000 && c.pipeline.queueLength > 0; i++) await new Promise<void>((r) => realImmediate(() => r()));
  await flush();
}

describe('connection', () => {
  let sockets: FakeSocket[];
  let epoch: string;
  let storage: MemoryStorage;
  let conn: Connection;
  let store: RunStore;
  let cursors: CursorBook;

  beforeEach(() => {
    vi.useFakeTimers();
    sockets = [];
    epoch = 'aaaa-0';
    storage = new MemoryStorage();
    store = new RunStore({ schedule: (fn) => setTimeout(fn, 0) });
    cursors = new CursorBook(storage, 0);
    conn = new Connection({
      store,
      cursors,
      decoder: new InlineDecoder(),
      fetchVersion: async () => version(epoch),
      openSocket: (url) => {
        const s = new FakeSocket(url);
        sockets.push(s);
        return s;
      },
      url: () => 'ws://x/ws?batch=1',
    });
  });
  afterEach(() => {
    conn.stop();
    vi.useRealTimers();
  });

  test('first visit resumes from latest and seeds cursors from replay_complete', async () => {
    conn.start();
    await flush();
    const ws = sockets[0]!;
    expect(ws.url).toContain('batch=1');
    ws.open();
    expect(JSON.parse(ws.sent[0]!)).toEqual({ type: 'resume', from: 'latest', lastOffsetsByPartition: {}, epoch: 'aaaa-0' });
    ws.text({ type: 'replay_complete', mode: 'latest', totalReplayed: 0, lastOffsetsByPartition: { '0': '99', '1': '5' }, capped: false, epoch: 'aaaa-0' });
    await flush();
    expect(conn.state).toBe('live');
    expect(cursors.toResume()).toEqual({ '0': '99', '1': '5' });
    // Live records are applied and committed.
    const recs = asRecords(exampleRun('r1'), 0, 100);
    ws.binary(oneRecordFrame(recs[0]!));
    await drained(conn);
    expect(store.get('r1')).toBeDefined();
    expect(cursors.toResume()['0']).toBe('100');
  });

  test('a dropped connection resumes from the committed cursors with the epoch', async () => {
    cursors.load('ns_aaaa-0');
    cursors.commit([[0, 41n]]);
    cursors.flush();
    conn.start();
    await flush();
    sockets[0]!.open();
    expect(JSON.parse(sockets[0]!.sent[0]!)).toEqual({ type: 'resume', from: 'cursor', lastOffsetsByPartition: { '0': '41' }, epoch: 'aaaa-0' });
    sockets[0]!.serverClose(1006);
    expect(conn.state).toBe('reconnecting');
    await vi.advanceTimersByTimeAsync(1000);
    await flush();
    expect(sockets.length).toBe(2);
    sockets[1]!.open();
    expect(JSON.parse(sockets[1]!.sent[0]!).lastOffsetsByPartition).toEqual({ '0': '41' });
  });

  test('a capped replay resumes again by itself', async () => {
    cursors.load('ns_aaaa-0');
    cursors.commit([[0, 10n]]);
    conn.start();
    await flush();
    const ws = sockets[0]!;
    ws.open();
    const recs = asRecords(exampleRun('r2'), 0, 11);
    ws.binary(oneRecordFrame(recs[0]!));
    ws.text({ type: 'replay_complete', mode: 'cursor', totalReplayed: 1, lastOffsetsByPartition: { '0': '11' }, capped: true, epoch: 'aaaa-0' });
    await drained(conn);
    expect(ws.sent.length).toBe(2);
    expect(JSON.parse(ws.sent[1]!)).toEqual({ type: 'resume', from: 'cursor', lastOffsetsByPartition: { '0': '11' }, epoch: 'aaaa-0' });
    expect(conn.cappedCount).toBe(1);
    expect(conn.notices.some((n) => n.kind === 'capped')).toBe(true);
    expect(conn.state).toBe('replaying');
    ws.text({ type: 'replay_complete', mode: 'cursor', totalReplayed: 0, lastOffsetsByPartition: {}, capped: false, epoch: 'aaaa-0' });
    await flush();
    expect(conn.state).toBe('live');
  });

  test('close 4001 re-reads /version, drops cursors and starts again', async () => {
    cursors.load('ns_aaaa-0');
    cursors.commit([[0, 10n]]);
    cursors.flush();
    conn.start();
    await flush();
    sockets[0]!.open();
    store.ensure('old-run');
    epoch = 'aaaa-1';
    sockets[0]!.serverClose(4001, 'epoch_changed');
    await flush();
    expect(storage.getItem('dashstream:cursors:v1:ns_aaaa-0')).toBeNull();
    expect(store.get('old-run')).toBeUndefined();
    expect(sockets.length).toBe(2);
    sockets[1]!.open();
    expect(JSON.parse(sockets[1]!.sent[0]!)).toEqual({ type: 'resume', from: 'latest', lastOffsetsByPartition: {}, epoch: 'aaaa-1' });
  });

  test('unlimited capped backoff and Retry now', async () => {
    conn.start();
    await flush();
    const delays: number[] = [];
    for (let i = 0; i < 9; i++) {
      sockets[sockets.length - 1]!.serverClose(1006);
      delays.push((conn.nextRetryAt ?? 0) - Date.now());
      await vi.advanceTimersByTimeAsync(40_000);
      await flush();
    }
    expect(delays[0]).toBeLessThan(500);
    expect(Math.max(...delays)).toBeLessThanOrEqual(36_000);
    expect(delays[8]).toBeGreaterThan(20_000);
    expect(sockets.length).toBe(10); // never gives up
    sockets[sockets.length - 1]!.serverClose(1006);
    expect(conn.state).toBe('reconnecting');
    conn.retryNow();
    await flush();
    expect(sockets.length).toBe(11);
  });

  test('a silent socket is detected by the heartbeat and replaced', async () => {
    conn.start();
    await flush();
    sockets[0]!.open();
    await vi.advanceTimersByTimeAsync(10_000);
    expect(sockets[0]!.sent).toContain('{"type":"ping"}');
    await vi.advanceTimersByTimeAsync(30_000);
    await flush();
    expect(sockets[0]!.closed?.[0]).toBe(4401);
    expect(sockets.length).toBeGreaterThanOrEqual(2);
  });
});
