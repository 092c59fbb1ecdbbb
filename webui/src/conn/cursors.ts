// Resume cursors: the last *applied* Kafka offset per partition, kept in
// localStorage under the server's resume namespace (which carries the
// epoch, DECISIONS D2). Offsets are decimal strings end to end (int64).
// Writes are throttled; flush() runs on page hide. Garbage in storage is
// ignored, never fatal.

export interface StorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

const PREFIX = 'dashstream:cursors:v1:';
const INDEX = 'dashstream:cursors:v1:index';
const MAX_NAMESPACES = 8;
const MAX_PARTITIONS = 1024;

interface Stored {
  v: 1;
  offsets: Record<string, string>;
  tsUs: number;
  updated: number;
}

const DIGITS = /^(0|[1-9][0-9]{0,18})$/;

export class CursorBook {
  namespace = '';
  readonly committed = new Map<number, bigint>();
  /** Producer timestamp of the last applied record (replay progress). */
  lastTsUs = 0;
  private dirty = false;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private readonly storage: StorageLike | null;
  private readonly throttleMs: number;
  commits = 0;

  constructor(storage: StorageLike | null, throttleMs = 1000) {
    this.storage = storage;
    this.throttleMs = throttleMs;
  }

  private key(ns = this.namespace): string {
    return PREFIX + ns;
  }

  /** Switches to namespace and loads its cursors; false when none are stored. */
  load(namespace: string): boolean {
    if (namespace !== this.namespace) this.flush();
    this.namespace = namespace;
    this.committed.clear();
    this.lastTsUs = 0;
    if (!this.storage) return false;
    let raw: string | null = null;
    try {
      raw = this.storage.getItem(this.key());
    } catch {
      return false;
    }
    if (!raw) return false;
    try {
      const s = JSON.parse(raw) as Partial<Stored>;
      if (s && typeof s.offsets === 'object' && s.offsets) {
        for (const [p, o] of Object.entries(s.offsets)) {
          if (!/^(0|[1-9][0-9]{0,9})$/.test(p) || typeof o !== 'string' || !DIGITS.test(o)) continue;
          if (this.committed.size >= MAX_PARTITIONS) break;
          this.committed.set(Number(p), BigInt(o));
        }
        if (typeof s.tsUs === 'number' && Number.isFinite(s.tsUs)) this.lastTsUs = s.tsUs;
      }
    } catch {
      // garbage: start without cursors
    }
    return this.committed.size > 0;
  }

  has(): boolean {
    return this.committed.size > 0;
  }

  /** Records applied offsets (monotonic per partition). */
  commit(offsets: readonly (readonly [number, bigint])[], tsUs = 0): void {
    let changed = false;
    for (const [p, o] of offsets) {
      const prev = this.committed.get(p);
      if (prev === undefined || o > prev) {
        this.committed.set(p, o);
        changed = true;
      }
    }
    if (tsUs > this.lastTsUs) this.lastTsUs = tsUs;
    if (changed) {
      this.commits++;
      this.schedule();
    }
  }

  /** Seeds cursors from replay_complete{mode:"latest"} (first visit). */
  seed(offsets: Record<string, string | number>): void {
    const list: [number, bigint][] = [];
    for (const [p, o] of Object.entries(offsets)) {
      const s = String(o);
      if (/^(0|[1-9][0-9]{0,9})$/.test(p) && (DIGITS.test(s) || s === '-1')) {
        if (s !== '-1') list.push([Number(p), BigInt(s)]);
      }
    }
    this.commit(list);
    this.flush();
  }

  /** The resume map: {"partition": "offset"}. */
  toResume(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [p, o] of [...this.committed.entries()].sort((a, b) => a[0] - b[0])) out[String(p)] = o.toString();
    return out;
  }

  /** Forgets the cursors of the current namespace (epoch changed). */
  drop(): void {
    this.committed.clear();
    this.lastTsUs = 0;
    this.dirty = false;
    try {
      this.storage?.removeItem(this.key());
    } catch {
      // ignore
    }
  }

  private schedule(): void {
    this.dirty = true;
    if (this.timer !== undefined) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.flush();
    }, this.throttleMs);
  }

  flush(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (!this.dirty || !this.storage || !this.namespace) return;
    this.dirty = false;
    const s: Stored = { v: 1, offsets: this.toResume(), tsUs: this.lastTsUs, updated: Date.now() };
    try {
      this.storage.setItem(this.key(), JSON.stringify(s));
      this.touchIndex();
    } catch {
      // quota or privacy mode: keep going with in-memory cursors
    }
  }

  /** Keeps at most MAX_NAMESPACES namespaces, least recently written dropped. */
  private touchIndex(): void {
    if (!this.storage) return;
    let list: string[] = [];
    try {
      const raw = this.storage.getItem(INDEX);
      const parsed: unknown = raw ? JSON.parse(raw) : [];
      if (Array.isArray(parsed)) list = parsed.filter((x): x is string => typeof x === 'string');
    } catch {
      list = [];
    }
    list = [this.namespace, ...list.filter((n) => n !== this.namespace)];
    for (const old of list.slice(MAX_NAMESPACES)) this.storage.removeItem(PREFIX + old);
    this.storage.setItem(INDEX, JSON.stringify(list.slice(0, MAX_NAMESPACES)));
  }
}
