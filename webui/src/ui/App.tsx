import { useEffect, useState } from 'react';
import { EXPECTED_SCHEMA_VERSION } from '../lib/types';
import { useConnection, useHealth, useNow } from './context';
import { fmtDurationMs, fmtInt, shortId } from './format';
import { HealthPage } from './HealthPage';
import { linkClick, navigate, routeUrl, useRoute, type Route } from './route';
import { RunPage } from './RunPage';
import { RunsPage } from './RunsPage';
import { ShortcutHelp } from './ShortcutHelp';

export function App() {
  const route = useRoute();
  const [help, setHelp] = useState(false);
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (isTyping(e)) return;
      if (e.key === '?') {
        setHelp((h) => !h);
        e.preventDefault();
      } else if (e.key === 'g') {
        pendingG = performance.now();
      } else if (pendingG && performance.now() - pendingG < 1000 && (e.key === 'r' || e.key === 'h')) {
        navigate(e.key === 'r' ? { view: 'runs' } : { view: 'health' });
        pendingG = 0;
      } else if (e.key === 'Escape') setHelp(false);
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, []);
  useEffect(() => {
    document.title =
      route.view === 'run' ? `Run ${shortId(route.thread ?? '')} · DashStream` : route.view === 'health' ? 'Health · DashStream' : 'Runs · DashStream';
  }, [route.view, route.thread]);
  return (
    <div className="app">
      <Header route={route} onHelp={() => setHelp(true)} />
      <Banners />
      <main className="main">
        {route.view === 'run' && route.thread ? (
          <RunPage key={route.thread} thread={route.thread} seq={route.seq} tab={route.tab} />
        ) : route.view === 'health' ? (
          <HealthPage />
        ) : (
          <RunsPage route={route} />
        )}
      </main>
      {help && <ShortcutHelp onClose={() => setHelp(false)} />}
    </div>
  );
}

let pendingG = 0;

export function isTyping(e: KeyboardEvent): boolean {
  const t = e.target as HTMLElement | null;
  if (!t) return false;
  const tag = t.tagName;
  return tag === 'INPUT' || tag === 'TEXTAREA' || tag === 'SELECT' || t.isContentEditable;
}

function NavLink({ to, label, active }: { to: Route; label: string; active: boolean }) {
  return (
    <a href={routeUrl(to)} onClick={linkClick(to)} className={active ? 'nav-link active' : 'nav-link'} aria-current={active ? 'page' : undefined}>
      {label}
    </a>
  );
}

function Header({ route, onHelp }: { route: Route; onHelp: () => void }) {
  return (
    <header className="topbar">
      <a href="/" onClick={linkClick({ view: 'runs' })} className="brand" aria-label="DashStream home">
        <span className="brand-mark" aria-hidden>
          ◆
        </span>{' '}
        DashStream
      </a>
      <nav className="nav" aria-label="Main">
        <NavLink to={{ view: 'runs' }} label="Runs" active={route.view !== 'health'} />
        <NavLink to={{ view: 'health' }} label="Health" active={route.view === 'health'} />
      </nav>
      <div className="topbar-right">
        <ReplayProgress />
        <ConnectionStatus />
        <button className="btn ghost small" onClick={onHelp} title="Keyboard shortcuts (?)" aria-label="Keyboard shortcuts">
          ?
        </button>
      </div>
    </header>
  );
}

const STATE_LABEL: Record<string, string> = {
  starting: 'Starting',
  connecting: 'Connecting…',
  replaying: 'Catching up…',
  live: 'Live',
  reconnecting: 'Reconnecting',
  stopped: 'Stopped',
};

export function ConnectionStatus() {
  const conn = useConnection();
  const now = useNow(1000);
  const retryIn = conn.nextRetryAt ? Math.max(0, conn.nextRetryAt - now) : 0;
  const detail = [
    conn.version ? `server ${conn.version.version}, epoch ${conn.epoch}` : '',
    conn.lastClose ? `last close ${conn.lastClose.code}${conn.lastClose.reason ? ` (${conn.lastClose.reason})` : ''}` : '',
    conn.lastError ? `last error: ${conn.lastError}` : '',
    `reconnects: ${conn.reconnects}`,
  ]
    .filter(Boolean)
    .join('\n');
  return (
    <div className="conn" data-testid="connection-status" data-state={conn.state} title={detail} role="status" aria-live="polite">
      <span className={`dot dot-${conn.state}`} aria-hidden />
      <span className="conn-label">
        {STATE_LABEL[conn.state] ?? conn.state}
        {conn.state === 'reconnecting' && retryIn > 0 ? ` in ${Math.ceil(retryIn / 1000)} s` : ''}
      </span>
      {conn.state === 'reconnecting' && (
        <button className="btn small" data-testid="retry-now" onClick={() => conn.retryNow()}>
          Retry now
        </button>
      )}
    </div>
  );
}

function ReplayProgress() {
  const conn = useConnection();
  useNow(500);
  const r = conn.replay;
  if (!r || r.mode !== 'cursor') return null;
  const visible = (!r.done && conn.state === 'replaying') || (r.done && r.records > 0 && r.doneAt !== undefined && Date.now() - r.doneAt < 3000);
  if (!visible) return null;
  const pct = Math.round(r.progress * 100);
  return (
    <div className="replay" data-testid="replay-progress" title="Replaying what was missed since the last visit">
      <span className="replay-label">
        {r.done ? 'Caught up' : 'Catching up'} · {fmtInt(r.records)} records{r.resumes > 1 ? ` · resume ${r.resumes}` : ''}
      </span>
      <div className="progress" role="progressbar" aria-valuemin={0} aria-valuemax={100} aria-valuenow={pct}>
        <div className="progress-fill" style={{ width: `${Math.max(3, pct)}%` }} />
      </div>
    </div>
  );
}

function Banners() {
  const conn = useConnection();
  const health = useHealth();
  const now = useNow(2000);
  const [hideCapped, setHideCapped] = useState(0);
  const mismatch = conn.pipeline.schemaMismatch;
  const capped = conn.notices.filter((n) => n.kind === 'capped' && n.at > hideCapped && now - n.at < 120_000);
  const stalls = health.stalls(now).filter((s) => !health.dismissed.has(s.thread));
  const queue = health.queueGrowing();
  const stale = health.healthStale(now);
  const unauthorized = conn.lastError?.includes('401') || conn.lastClose?.code === 1008;
  return (
    <div className="banners">
      {mismatch && (
        <div className="banner error" role="alert" data-testid="schema-banner">
          The server sends messages with schema v{mismatch.version}; this UI understands v{EXPECTED_SCHEMA_VERSION}. Applying is paused
          (nothing is lost: cursors are not advanced). Rebuild the UI (<code>make build</code>) or reconnect to a compatible server.
          <button className="btn small" onClick={() => conn.retryNow()}>
            Reconnect
          </button>
        </div>
      )}
      {unauthorized && (
        <div className="banner error" role="alert">
          The server needs an access token: open this page with <code>?token=…</code> once (it is kept for this tab).
        </div>
      )}
      {capped.length > 0 && (
        <div className="banner warn" data-testid="capped-notice" role="status">
          {capped[capped.length - 1]?.text} (the server's REPLAY_MAX_TOTAL). The UI asks for the rest by itself
          {conn.cappedCount > 1 ? ` — ${conn.cappedCount} capped replays so far` : ''}.
          <button className="btn ghost small" onClick={() => setHideCapped(Date.now())}>
            Dismiss
          </button>
        </div>
      )}
      {queue.growing && (
        <div className="banner warn" data-testid="stall-banner" data-kind="queue" role="status">
          This tab is falling behind: {fmtInt(queue.queue)} frames waiting, apply lag p95 {fmtDurationMs(queue.lagP95)}.
        </div>
      )}
      {stale && (
        <div className="banner warn" role="status">
          Server health has not answered for {fmtDurationMs(now - health.lastOkAt)}.
        </div>
      )}
      {stalls.length > 0 && (
        <div className="banner warn" data-testid="stall-banner" data-kind="run" role="status">
          <span>
          {stalls.length === 1 ? `A run looks stalled (no events for over ${health.stallSecs} s): ` : `${stalls.length} runs look stalled (no events for over ${health.stallSecs} s): `}
          {stalls.slice(0, 3).map((s, i) => (
            <span key={s.thread}>
              {i > 0 ? ', ' : ''}
              <a href={routeUrl({ view: 'run', thread: s.thread })} onClick={linkClick({ view: 'run', thread: s.thread })}>
                {s.graph || 'run'} {shortId(s.thread)}
              </a>
              {` (${fmtDurationMs(s.idleMs)} idle)`}
            </span>
          ))}
          {stalls.length > 3 ? ` and ${stalls.length - 3} more` : ''}
          </span>
          <button className="btn ghost small" onClick={() => health.dismiss(stalls.map((s) => s.thread))}>
            Dismiss
          </button>
        </div>
      )}
    </div>
  );
}
