import { memo, useCallback, useEffect, useMemo, useRef, useState } from 'react';
import { getJson, runsUrl, type RunRow, type RunsPage as RunsPageBody } from '../conn/http';
import { isTyping } from './App';
import { useNow, useServices, useStoreVersion } from './context';
import { fmtDurationMs, fmtInt, fmtTime, shortId } from './format';
import { linkClick, navigate, routeUrl, type Route } from './route';

const GRAPHS_KEY = 'dashstream:graphs';
const POLL_MS = 2000;

function knownGraphs(): string[] {
  try {
    const v: unknown = JSON.parse(localStorage.getItem(GRAPHS_KEY) ?? '[]');
    return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
  } catch {
    return [];
  }
}

export function RunsPage({ route }: { route: Route }) {
  const { store } = useServices();
  useStoreVersion(1000);
  const now = useNow(1000);
  const [rows, setRows] = useState<RunRow[]>([]);
  const [older, setOlder] = useState<RunRow[]>([]);
  const [next, setNext] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [loaded, setLoaded] = useState(false);
  const [q, setQ] = useState(route.q ?? '');
  const [selThread, setSelThread] = useState<string | undefined>(undefined);
  const [graphs, setGraphs] = useState<string[]>(knownGraphs);
  const searchRef = useRef<HTMLInputElement>(null);
  const tableRef = useRef<HTMLTableSectionElement>(null);
  const filters = useMemo(() => ({ graph: route.graph, status: route.status, q: route.q }), [route.graph, route.status, route.q]);
  const seenThreads = useRef(new Set<string>());

  const refresh = useCallback(async () => {
    try {
      const page = await getJson<RunsPageBody>(runsUrl({ ...filters, limit: 100 }), { timeoutMs: 8000 });
      // Keep the objects of unchanged rows, so their memoised rows do not re-render.
      setRows((prev) => {
        const old = new Map(prev.map((r) => [r.thread_id, r]));
        return page.runs.map((r) => {
          const o = old.get(r.thread_id);
          return o && o.messages === r.messages && o.status === r.status && o.ended_at === r.ended_at && o.last_error === r.last_error && o.graph_name === r.graph_name ? o : r;
        });
      });
      setNext((n) => (older.length === 0 ? page.next : n));
      setError(null);
      setLoaded(true);
      for (const r of page.runs) seenThreads.current.add(r.thread_id);
      const names = new Set([...knownGraphs(), ...page.runs.map((r) => r.graph_name).filter(Boolean)]);
      const list = [...names].sort().slice(0, 200);
      setGraphs(list);
      try {
        localStorage.setItem(GRAPHS_KEY, JSON.stringify(list));
      } catch {
        // ignore
      }
    } catch (e) {
      setError((e as Error).message);
      setLoaded(true);
    }
  }, [filters, older.length]);

  // Reset paging when the filters change.
  useEffect(() => {
    setOlder([]);
    setNext(null);
    setSelThread(undefined);
  }, [filters]);

  useEffect(() => {
    void refresh();
    const t = setInterval(() => {
      if (!document.hidden) void refresh();
    }, POLL_MS);
    return () => clearInterval(t);
  }, [refresh]);

  // A run we have not listed yet showed up on the live stream: refresh now.
  const lastLiveRefresh = useRef(0);
  useEffect(() => {
    if (performance.now() - lastLiveRefresh.current < 1000) return;
    for (const s of store.summaries.values()) {
      if (!seenThreads.current.has(s.thread) && now - s.lastSeenAt < 5000 && s.status === 'running') {
        lastLiveRefresh.current = performance.now();
        void refresh();
        break;
      }
    }
  });

  // Debounced text filter into the URL.
  useEffect(() => {
    if ((route.q ?? '') === q) return;
    const t = setTimeout(() => navigate({ ...route, view: 'runs', ...(q ? { q } : { q: undefined }) }, { replace: true }), 300);
    return () => clearTimeout(t);
  }, [q, route]);

  const loadMore = async () => {
    if (!next) return;
    try {
      const page = await getJson<RunsPageBody>(runsUrl({ ...filters, limit: 100, before: next }));
      setOlder((o) => [...o, ...page.runs]);
      setNext(page.next);
    } catch (e) {
      setError((e as Error).message);
    }
  };

  const all = useMemo(() => {
    const seen = new Set<string>();
    const out: RunRow[] = [];
    for (const r of [...rows, ...older]) {
      if (seen.has(r.thread_id)) continue;
      seen.add(r.thread_id);
      out.push(r);
    }
    // Newest start first: rows keep their place while runs progress.
    const t = (r: RunRow) => (r.started_at ? Date.parse(r.started_at) : 0);
    return out.sort((a, b) => t(b) - t(a));
  }, [rows, older]);

  const sel = Math.max(0, selThread ? all.findIndex((r) => r.thread_id === selThread) : 0);
  const setSel = useCallback(
    (f: (i: number) => number) => {
      const i = f(sel);
      const r = all[Math.max(0, Math.min(all.length - 1, i))];
      if (r) setSelThread(r.thread_id);
    },
    [all, sel],
  );

  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (e.key === '/' && !isTyping(e)) {
        e.preventDefault();
        searchRef.current?.focus();
        return;
      }
      if (isTyping(e)) {
        if (e.key === 'Escape') (e.target as HTMLElement).blur();
        if (e.key === 'ArrowDown' || e.key === 'Enter') (e.target as HTMLElement).blur();
        return;
      }
      if (e.key === 'ArrowDown' || e.key === 'j') {
        setSel((s) => Math.min(all.length - 1, s + 1));
        e.preventDefault();
      } else if (e.key === 'ArrowUp' || e.key === 'k') {
        setSel((s) => Math.max(0, s - 1));
        e.preventDefault();
      } else if (e.key === 'Enter' && all[sel]) {
        navigate({ view: 'run', thread: all[sel].thread_id });
      }
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, [all, sel, setSel]);

  useEffect(() => {
    const row = tableRef.current?.querySelector<HTMLElement>(`tr[data-index="${sel}"]`);
    row?.scrollIntoView({ block: 'nearest' });
  }, [sel]);

  const setFilter = (patch: Partial<Route>) => navigate({ ...route, view: 'runs', ...patch }, { replace: true });

  return (
    <div className="runs-page">
      <div className="toolbar" role="search">
        <h1 className="page-title">Runs</h1>
        <label className="field">
          <span className="sr-only">Graph</span>
          <select
            value={route.graph ?? ''}
            onChange={(e) => setFilter(e.target.value ? { graph: e.target.value } : { graph: undefined })}
            data-testid="filter-graph"
          >
            <option value="">All graphs</option>
            {[...new Set([...(route.graph ? [route.graph] : []), ...graphs])].map((g) => (
              <option key={g} value={g}>
                {g}
              </option>
            ))}
          </select>
        </label>
        <label className="field">
          <span className="sr-only">Status</span>
          <select
            value={route.status ?? ''}
            onChange={(e) => setFilter(e.target.value ? { status: e.target.value } : { status: undefined })}
            data-testid="filter-status"
          >
            <option value="">Any status</option>
            <option value="running">Running</option>
            <option value="completed">Completed</option>
            <option value="error">Error</option>
          </select>
        </label>
        <label className="field grow">
          <span className="sr-only">Search</span>
          <input
            ref={searchRef}
            type="search"
            placeholder="Search thread id, graph, error…  ( / )"
            value={q}
            onChange={(e) => setQ(e.target.value)}
            data-testid="filter-text"
          />
        </label>
        <span className="muted small">{loaded ? `${fmtInt(all.length)} shown · updates every ${POLL_MS / 1000} s` : 'loading…'}</span>
      </div>
      {error && (
        <div className="banner error" role="alert">
          Could not load runs: {error}
          {error.startsWith('401') ? ' — open this page with ?token=… once.' : ''}
        </div>
      )}
      <div className="table-wrap">
        <table className="runs" aria-label="Runs">
          <thead>
            <tr>
              <th>Graph</th>
              <th>Status</th>
              <th>Started</th>
              <th className="num">Duration</th>
              <th className="num">Messages</th>
              <th>Thread</th>
              <th>Last error</th>
            </tr>
          </thead>
          <tbody ref={tableRef}>
            {all.map((r, i) => {
              const live = store.summaries.get(r.thread_id);
              const fresh = live !== undefined && now - live.lastSeenAt < 2500;
              const status = live?.status && r.status === 'running' && live.status !== 'running' ? live.status : r.status;
              const start = r.started_at ? Date.parse(r.started_at) : NaN;
              const end = r.ended_at ? Date.parse(r.ended_at) : status === 'running' ? now : r.updated_at ? Date.parse(r.updated_at) : NaN;
              const duration = Number.isFinite(start) && Number.isFinite(end) ? fmtDurationMs(end - start) : '—';
              return <RunRowView key={r.thread_id} row={r} index={i} status={status} fresh={fresh} duration={duration} selected={i === sel} />;
            })}
            {loaded && all.length === 0 && !error && (
              <tr>
                <td colSpan={7} className="empty">
                  No runs{route.graph || route.status || route.q ? ' match these filters' : ' yet — start a producer (or `dashstream demo`)'}.
                </td>
              </tr>
            )}
          </tbody>
        </table>
        {next && (
          <div className="load-more">
            <button className="btn" onClick={() => void loadMore()}>
              Load older runs
            </button>
          </div>
        )}
      </div>
    </div>
  );
}

// One row; memoised so a refresh re-renders only the rows that changed.
const RunRowView = memo(function RunRowView({
  row: r,
  index: i,
  status,
  fresh,
  duration,
  selected,
}: {
  row: RunRow;
  index: number;
  status: string;
  fresh: boolean;
  duration: string;
  selected: boolean;
}) {
  const to: Route = { view: 'run', thread: r.thread_id };
  return (
    <tr
      data-testid="run-row"
      data-thread={r.thread_id}
      data-status={status}
      data-index={i}
      className={selected ? 'selected' : undefined}
      aria-selected={selected}
      onClick={() => navigate(to)}
    >
      <td>
        <a href={routeUrl(to)} onClick={linkClick(to)} className="run-link" tabIndex={selected ? 0 : -1}>
          {r.graph_name || <span className="muted">(unnamed)</span>}
        </a>
      </td>
      <td>
        <StatusBadge status={status} live={fresh} />
      </td>
      <td className="mono small">{fmtTime(r.started_at)}</td>
      <td className="num mono small">{duration}</td>
      <td className="num mono" data-testid="run-row-messages">
        {fmtInt(r.messages)}
      </td>
      <td className="mono small muted" title={r.thread_id}>
        {shortId(r.thread_id, 13)}
      </td>
      <td className="error-cell" title={r.last_error ?? ''}>
        {r.last_error ?? ''}
      </td>
    </tr>
  );
});

export function StatusBadge({ status, live }: { status: string; live?: boolean }) {
  return (
    <span className={`badge status-${status}`} data-testid="status-badge">
      {live && status === 'running' ? <span className="pulse" aria-hidden /> : null}
      {status}
    </span>
  );
}
