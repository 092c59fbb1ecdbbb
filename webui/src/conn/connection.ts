// The live connection: /version → namespace and epoch → cursors → /ws?batch=1
// → resume. Reconnects forever with capped backoff (and a "Retry now"),
// detects dead sockets with a heartbeat, restarts on 4001 (epoch changed)
// with fresh cursors, resumes again by itself after a capped replay, and
// shows replay progress. Every socket gets a new generation; the pipeline
// drops anything of an older one.
import type { DecodedFrame } from '../lib/types';
import type { RunStore } from '../store/store';
import type { Decoder } from '../worker/protocol';
import type { CursorBook } from './cursors';
import { getJson, wsUrl, type VersionInfo } from './http';
import { Pipeline, type ControlMessage } from './pipeline';

export type ConnState = 'starting' | 'connecting' | 'replaying' | 'live' | 'reconnecting' | 'stopped';

export interface ReplayInfo {
  mode: 'cursor' | 'latest';
  startedAt: number;
  fromTsUs: number;
  targetUs: number;
  records: number;
  progress: number;
  done: boolean;
  doneAt?: number;
  totalReplayed?: number;
  resumes: number;
}

export interface Notice {
  at: number;
  kind: 'gap' | 'cursor_stale' | 'capped' | 'disconnect' | 'error' | 'epoch';
  text: string;
}

export interface WebSocketLike {
  binaryType: string;
  readyState: number;
  onopen: ((ev: Event) => void) | null;
  onclose: ((ev: CloseEvent) => void) | null;
  onerror: ((ev: Event) => void) | null;
  onmessage: ((ev: MessageEvent) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

export interface ConnectionDeps {
  store: RunStore;
  cursors: CursorBook;
  decoder: Decoder;
  openSocket?: (url: string) => WebSocketLike;
  fetchVersion?: () => Promise<VersionInfo>;
  url?: () => string;
  heartbeatMs?: number;
  deadAfterMs?: number;
}

/** Close codes this client uses for itself (WebSocket allows 1000 and 3000–4999). */
export const CLIENT_CLOSE = { restart: 4400, heartbeat: 4401, stopped: 1000 } as const;

const MAX_BACKOFF_MS = 30_000;

export class Connection {
  state: ConnState = 'starting';
  gen = 0;
  attempt = 0;
  reconnects = 0;
  nextRetryAt: number | undefined;
  lastClose: { code: number; reason: string; at: number } | undefined;
  lastError: string | undefined;
  version: VersionInfo | undefined;
  namespace = '';
  epoch = '';
  connectedAt: number | undefined;
  /** performance.now() when the current socket went live (replay complete); undefined while not live. */
  liveSince: number | undefined;
  replay: ReplayInfo | undefined;
  cappedCount = 0;
  notices: Notice[] = [];
  changes = 0;
  readonly pipeline: Pipeline;

  private ws: WebSocketLike | null = null;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private hbTimer: ReturnType<typeof setInterval> | undefined;
  private openedAt = 0;
  private readonly listeners = new Set<() => void>();
  private readonly deps: ConnectionDeps;

  constructor(deps: ConnectionDeps) {
    this.deps = deps;
    this.pipeline = new Pipeline({
      decoder: deps.decoder,
      store: deps.store,
      cursors: deps.cursors,
      onControl: (m, g) => this.onControl(m, g),
      onFatal: (reason, g) => this.onFatal(reason, g),
      onApplied: (f, g) => this.onApplied(f, g),
    });
  }

  subscribe(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private changed(): void {
    this.changes++;
    for (const l of this.listeners) l();
  }

  private notice(kind: Notice['kind'], text: string): void {
    this.notices.push({ at: Date.now(), kind, text });
    if (this.notices.length > 50) this.notices.splice(0, this.notices.length - 50);
  }

  start(): void {
    if (this.state !== 'starting' && this.state !== 'stopped') return;
    void this.connect();
  }

  stop(): void {
    this.state = 'stopped';
    this.gen++;
    this.pipeline.reset(this.gen);
    this.teardown(CLIENT_CLOSE.stopped, 'stopped');
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.deps.cursors.flush();
    this.changed();
  }

  /** "Retry now": skip the remaining backoff. */
  retryNow(): void {
    if (this.state !== 'reconnecting') return;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    void this.connect();
  }

  private teardown(code: number, reason: string): void {
    if (this.hbTimer) clearInterval(this.hbTimer);
    this.hbTimer = undefined;
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.onopen = null;
      ws.onmessage = null;
      ws.onerror = null;
      ws.onclose = null;
      try {
        ws.close(code, reason);
      } catch {
        // already closed
      }
    }
  }

  private async connect(): Promise<void> {
    const gen = ++this.gen;
    this.liveSince = undefined;
    this.pipeline.reset(gen);
    this.teardown(CLIENT_CLOSE.restart, 'reconnecting');
    this.state = 'connecting';
    this.nextRetryAt = undefined;
    this.changed();
    let version: VersionInfo;
    try {
      version = await (this.deps.fetchVersion ?? (() => getJson<VersionInfo>('/version', { timeoutMs: 5000 })))();
    } catch (e) {
      if (gen !== this.gen) return;
      this.lastError = `/version: ${(e as Error).message}`;
      this.scheduleRetry();
      return;
    }
    if (gen !== this.gen) return;
    this.version = version;
    if (version.resume_namespace !== this.namespace) {
      if (this.namespace) {
        // Another history (epoch changed while we were away).
        this.notice('epoch', `server history changed (epoch ${this.epoch || '?'} → ${version.epoch})`);
        this.deps.store.clear();
      }
      this.namespace = version.resume_namespace;
      this.deps.cursors.load(this.namespace);
    }
    this.epoch = version.epoch;
    let ws: WebSocketLike;
    try {
      const url = (this.deps.url ?? (() => wsUrl()))();
      ws = this.deps.openSocket ? this.deps.openSocket(url) : (new WebSocket(url) as unknown as WebSocketLike);
    } catch (e) {
      this.lastError = `WebSocket: ${(e as Error).message}`;
      this.scheduleRetry();
      return;
    }
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    ws.onopen = () => {
      if (gen !== this.gen) return;
      this.openedAt = performance.now();
      this.connectedAt = Date.now();
      this.sendResume(gen);
      this.startHeartbeat(gen);
    };
    ws.onmessage = (ev: MessageEvent) => {
      if (gen !== this.gen) return;
      if (typeof ev.data === 'string') this.pipeline.text(gen, ev.data);
      else if (ev.data instanceof ArrayBuffer || (typeof Blob !== 'undefined' && ev.data instanceof Blob)) this.pipeline.binary(gen, ev.data);
    };
    ws.onerror = () => {
      // onclose follows with the code
    };
    ws.onclose = (ev: CloseEvent) => {
      if (gen !== this.gen) return;
      this.onClose(ev.code, ev.reason);
    };
  }

  private sendResume(gen: number): void {
    const ws = this.ws;
    if (!ws || gen !== this.gen) return;
    const c = this.deps.cursors;
    const first = !c.has();
    const msg = first
      ? { type: 'resume', from: 'latest', lastOffsetsByPartition: {}, epoch: this.epoch }
      : { type: 'resume', from: 'cursor', lastOffsetsByPartition: c.toResume(), epoch: this.epoch };
    const prev = this.replay;
    this.replay = {
      mode: first ? 'latest' : 'cursor',
      startedAt: Date.now(),
      fromTsUs: c.lastTsUs,
      targetUs: Date.now() * 1000,
      records: prev && !prev.done ? prev.records : 0,
      progress: 0,
      done: false,
      resumes: prev && !prev.done ? prev.resumes + 1 : 1,
    };
    this.state = 'replaying';
    ws.send(JSON.stringify(msg));
    this.changed();
  }

  private startHeartbeat(gen: number): void {
    if (this.hbTimer) clearInterval(this.hbTimer);
    const every = this.deps.heartbeatMs ?? 10_000;
    const deadAfter = this.deps.deadAfterMs ?? 25_000;
    this.hbTimer = setInterval(() => {
      if (gen !== this.gen || !this.ws) return;
      const now = performance.now();
      const last = Math.max(this.pipeline.lastFrameAt, this.openedAt);
      if (now - last > deadAfter) {
        this.lastError = `no frame for ${Math.round((now - last) / 1000)} s (heartbeat)`;
        this.restart(CLIENT_CLOSE.heartbeat, 'heartbeat timeout');
        return;
      }
      try {
        this.ws.send('{"type":"ping"}');
      } catch {
        // the close handler takes over
      }
    }, every);
  }

  private onApplied(f: DecodedFrame, gen: number): void {
    const r = this.replay;
    if (!r || r.done || gen !== this.gen) return;
    r.records += f.kafkaRecords;
    if (r.mode === 'cursor' && r.targetUs > r.fromTsUs && r.fromTsUs > 0) {
      let maxTs = 0;
      for (const x of f.records) if (x.tsUs > maxTs) maxTs = x.tsUs;
      if (maxTs > 0) r.progress = Math.max(r.progress, Math.min(0.99, (maxTs - r.fromTsUs) / (r.targetUs - r.fromTsUs)));
    }
  }

  private onControl(msg: ControlMessage, gen: number): void {
    if (gen !== this.gen) return;
    switch (msg.type) {
      case 'replay_complete': {
        const offsets = (msg.lastOffsetsByPartition ?? {}) as Record<string, string | number>;
        if (msg.mode === 'latest') this.deps.cursors.seed(offsets);
        if (typeof msg.epoch === 'string' && msg.epoch && this.epoch && msg.epoch !== this.epoch) {
          // The server moved to another history between /version and resume.
          this.notice('epoch', `epoch changed to ${msg.epoch}`);
          this.restart(CLIENT_CLOSE.restart, 'epoch changed');
          return;
        }
        const r = this.replay;
        if (msg.capped === true) {
          this.cappedCount++;
          this.notice('capped', `Replay capped by the server after ${String(msg.totalReplayed ?? '?')} records`);
          this.deps.cursors.flush();
          this.sendResume(gen);
          return;
        }
        if (r) {
          r.done = true;
          r.doneAt = Date.now();
          r.progress = 1;
          r.totalReplayed = Number(msg.totalReplayed ?? 0);
        }
        this.deps.cursors.flush();
        this.state = 'live';
        this.liveSince = performance.now();
        this.attempt = 0;
        this.lastError = undefined;
        this.changed();
        return;
      }
      case 'gap': {
        const text = `${String(msg.count ?? '?')} record(s) ${msg.reason === 'invalid' ? 'skipped as invalid' : 'no longer retained'} on partition ${String(msg.partition ?? '?')} (offsets ${String(msg.from ?? '?')}–${String(msg.to ?? '?')})`;
        this.notice('gap', text);
        this.deps.store.diag('GAP', text, `p${String(msg.partition ?? '?')}`);
        this.changed();
        return;
      }
      case 'cursor_stale':
        this.notice(
          'cursor_stale',
          msg.reason === 'epoch'
            ? 'stored cursors belong to another server history; replaying what is retained'
            : `cursor ${String(msg.requested ?? '?')} on partition ${String(msg.partition ?? '?')} is older than the oldest retained record (${String(msg.oldest ?? '?')})`,
        );
        this.changed();
        return;
      case 'disconnect':
        this.notice('disconnect', `server disconnected this client (${String(msg.reason ?? '?')}): ${String(msg.message ?? '')}`);
        this.changed();
        return;
      case 'error':
        this.notice('error', `server error ${String(msg.code ?? '')}: ${String(msg.message ?? '')}`);
        this.lastError = `${String(msg.code ?? 'error')}: ${String(msg.message ?? '')}`;
        this.changed();
        return;
      default:
        return;
    }
  }

  private onFatal(reason: string, gen: number): void {
    if (gen !== this.gen) return;
    this.lastError = reason;
    this.restart(CLIENT_CLOSE.restart, reason.slice(0, 100));
  }

  /** Drops the socket and everything in flight, then reconnects. */
  private restart(code: number, reason: string): void {
    this.gen++;
    this.pipeline.reset(this.gen);
    this.teardown(code, reason);
    this.lastClose = { code, reason, at: Date.now() };
    this.scheduleRetry();
  }

  private onClose(code: number, reason: string): void {
    this.teardown(CLIENT_CLOSE.restart, '');
    this.lastClose = { code, reason, at: Date.now() };
    this.gen++;
    this.pipeline.reset(this.gen);
    this.deps.cursors.flush();
    if (code === 4001) {
      // Epoch changed: cursors belong to a history that no longer exists.
      this.notice('epoch', 'the server history changed (cursor reset or new topic); starting again');
      this.deps.cursors.drop();
      this.deps.store.clear();
      this.namespace = '';
      this.attempt = 0;
      void this.connect();
      return;
    }
    if (code === 4002 || code === 4003 || code === 1009) {
      this.lastError = `server refused this client's request (close ${code}${reason ? ': ' + reason : ''})`;
    }
    this.scheduleRetry();
  }

  private scheduleRetry(): void {
    this.liveSince = undefined;
    if (this.state === 'stopped') return;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    const base = this.attempt === 0 ? 300 : Math.min(MAX_BACKOFF_MS, 1000 * 2 ** (this.attempt - 1));
    const delay = Math.round(base * (0.8 + Math.random() * 0.4));
    this.attempt++;
    this.reconnects++;
    this.state = 'reconnecting';
    this.nextRetryAt = Date.now() + delay;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      void this.connect();
    }, delay);
    this.changed();
  }
}
