// URL-addressable state: / (runs, with filters), /?thread=<id>[&seq=N]
// (a run, optionally at a step), /?view=health. Everything lives in the
// query string so links and reloads restore the view.
import { useSyncExternalStore } from 'react';

export interface Route {
  view: 'runs' | 'run' | 'health';
  thread?: string;
  seq?: string;
  tab?: string;
  graph?: string;
  status?: string;
  q?: string;
}

const EVENT = 'dashstream:navigate';

export function parseRoute(search: string): Route {
  const p = new URLSearchParams(search);
  const thread = p.get('thread') ?? undefined;
  const view = p.get('view') === 'health' ? 'health' : thread ? 'run' : 'runs';
  const r: Route = { view };
  if (thread) r.thread = thread;
  const seq = p.get('seq');
  if (seq && /^[0-9]{1,20}$/.test(seq)) r.seq = seq;
  for (const k of ['tab', 'graph', 'status', 'q'] as const) {
    const v = p.get(k);
    if (v) r[k] = v;
  }
  return r;
}

export function routeUrl(r: Route): string {
  const p = new URLSearchParams();
  if (r.view === 'health') p.set('view', 'health');
  if (r.view === 'run' && r.thread) {
    p.set('thread', r.thread);
    if (r.seq) p.set('seq', r.seq);
    if (r.tab) p.set('tab', r.tab);
  }
  if (r.view === 'runs') {
    if (r.graph) p.set('graph', r.graph);
    if (r.status) p.set('status', r.status);
    if (r.q) p.set('q', r.q);
  }
  const s = p.toString();
  return '/' + (s ? '?' + s : '');
}

let cached: { search: string; route: Route } | undefined;

function current(): Route {
  const search = window.location.search;
  if (!cached || cached.search !== search) cached = { search, route: parseRoute(search) };
  return cached.route;
}

function subscribe(fn: () => void): () => void {
  window.addEventListener('popstate', fn);
  window.addEventListener(EVENT, fn);
  return () => {
    window.removeEventListener('popstate', fn);
    window.removeEventListener(EVENT, fn);
  };
}

export function useRoute(): Route {
  return useSyncExternalStore(subscribe, current, current);
}

export function navigate(r: Route, opts: { replace?: boolean } = {}): void {
  const url = routeUrl(r);
  if (url === window.location.pathname + window.location.search) return;
  if (opts.replace) window.history.replaceState(null, '', url);
  else window.history.pushState(null, '', url);
  window.dispatchEvent(new Event(EVENT));
}

/** Click handler for in-app links: plain clicks navigate without reload. */
export function linkClick(r: Route) {
  return (e: { button: number; metaKey: boolean; ctrlKey: boolean; shiftKey: boolean; altKey: boolean; preventDefault(): void }) => {
    if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    e.preventDefault();
    navigate(r);
  };
}
