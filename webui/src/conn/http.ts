// HTTP helpers: the access token (DECISIONS D5), /version, /health, the run
// index and the records API used for backfill.

const TOKEN_KEY = 'dashstream:token';

let token: string | null = null;

/**
 * Takes ?token= from the first URL of the tab into sessionStorage (and off
 * the address bar, so it is not copied around with links).
 */
export function initToken(loc: Location = window.location, hist: History = window.history): string | null {
  const url = new URL(loc.href);
  const fromUrl = url.searchParams.get('token');
  if (fromUrl) {
    try {
      sessionStorage.setItem(TOKEN_KEY, fromUrl);
    } catch {
      // ignore
    }
    token = fromUrl;
    url.searchParams.delete('token');
    hist.replaceState(hist.state, '', url.pathname + (url.search ? url.search : '') + url.hash);
  } else {
    try {
      token = sessionStorage.getItem(TOKEN_KEY);
    } catch {
      token = null;
    }
  }
  return token;
}

export function getToken(): string | null {
  return token;
}

export function setToken(t: string | null): void {
  token = t;
}

export class HttpError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
    this.name = 'HttpError';
  }
}

export async function apiFetch(path: string, init: RequestInit & { timeoutMs?: number } = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  if (token && (path.startsWith('/api/') || path.startsWith('/ws'))) headers.set('Authorization', `Bearer ${token}`);
  const ctl = new AbortController();
  const t = setTimeout(() => ctl.abort(), init.timeoutMs ?? 10_000);
  const outer = init.signal;
  if (outer) outer.addEventListener('abort', () => ctl.abort(), { once: true });
  try {
    const res = await fetch(path, { ...init, headers, signal: ctl.signal, cache: 'no-store' });
    if (!res.ok) {
      let msg = `${res.status} ${res.statusText}`;
      try {
        const body = (await res.json()) as { error?: string };
        if (body.error) msg = `${res.status}: ${body.error}`;
      } catch {
        // not JSON
      }
      throw new HttpError(res.status, msg);
    }
    return res;
  } finally {
    clearTimeout(t);
  }
}

export async function getJson<T>(path: string, init: RequestInit & { timeoutMs?: number } = {}): Promise<T> {
  const res = await apiFetch(path, init);
  return (await res.json()) as T;
}

export interface VersionInfo {
  git_sha: string;
  build_date: string;
  schema_version: number;
  component: string;
  resume_namespace: string;
  kafka_topic: string;
  kafka_group_id: string;
  max_payload_bytes: number;
  decode_error_policy: string;
  epoch: string;
  version: string;
}

export interface RunRow {
  thread_id: string;
  graph_name: string;
  status: 'running' | 'completed' | 'error';
  started_at: string | null;
  ended_at: string | null;
  messages: number;
  last_error: string | null;
  first_seq?: number;
  last_seq?: number;
  updated_at?: string | null;
}

export interface RunsPage {
  runs: RunRow[];
  next: string | null;
}

export interface RunQuery {
  status?: string;
  graph?: string;
  q?: string;
  limit?: number;
  before?: string;
}

export function runsUrl(q: RunQuery): string {
  const p = new URLSearchParams();
  if (q.status) p.set('status', q.status);
  if (q.graph) p.set('graph', q.graph);
  if (q.q) p.set('q', q.q);
  if (q.limit) p.set('limit', String(q.limit));
  if (q.before) p.set('before', q.before);
  const s = p.toString();
  return '/api/runs' + (s ? '?' + s : '');
}

export function wsUrl(loc: Location = window.location): string {
  const proto = loc.protocol === 'https:' ? 'wss:' : 'ws:';
  const p = new URLSearchParams({ batch: '1' });
  if (token) p.set('token', token);
  return `${proto}//${loc.host}/ws?${p.toString()}`;
}

export interface RecordsPage {
  body: ArrayBuffer;
  more: boolean;
  next: string;
}

/** One page of a run's retained records (a D6 batch body). */
export async function fetchRecordsPage(thread: string, after: string, limit: number, signal?: AbortSignal): Promise<RecordsPage> {
  const p = new URLSearchParams({ limit: String(limit) });
  if (after) p.set('after', after);
  const res = await apiFetch(`/api/runs/${encodeURIComponent(thread)}/records?${p.toString()}`, {
    timeoutMs: 30_000,
    ...(signal ? { signal } : {}),
  });
  return {
    body: await res.arrayBuffer(),
    more: res.headers.get('X-DashStream-More') === 'true',
    next: res.headers.get('X-DashStream-Next') ?? '',
  };
}
