// One run: graph, waterfall of node visits, state and diff at the selected
// step, time travel (prev/next, slider, next error, follow live pinned to
// this run), backfill of the whole retained history, and the run's own
// integrity report.
import { useCallback, useEffect, useMemo, useState } from 'react';
import { getJson, HttpError, type RunRow } from '../conn/http';
import type { StateRec } from '../lib/types';
import { edgesAt, nodesAt, stepCursor, versionAt, type Step } from '../store/derive';
import type { RunModel } from '../store/run';
import { isTyping } from './App';
import { useNow, useRunVersion, useServices } from './context';
import { DiffView } from './DiffView';
import { fmtDurationMs, fmtDurationUs, fmtInt, fmtTime, shortId, usToDate } from './format';
import { GraphView } from './GraphView';
import { IconFirst, IconLast, IconNext, IconPrev } from './icons';
import { linkClick, navigate } from './route';
import { StatusBadge } from './RunsPage';
import { copyText, StateViewer } from './StateViewer';
import { StepDetails } from './StepDetails';
import { Timeline } from './Timeline';

type Tab = 'state' | 'diff' | 'details';

function stepHasError(s: Step): boolean {
  if (s.status === 'error') return true;
  return s.children.some((c) => (c.kind === 'tool' && (c.failures > 0 || c.stage === 4)) || (c.kind === 'note' && c.level !== 'info'));
}

function useServerRun(thread: string, running: boolean) {
  const [row, setRow] = useState<RunRow | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    let stop = false;
    const load = async () => {
      try {
        const r = await getJson<RunRow>(`/api/runs/${encodeURIComponent(thread)}`, { timeoutMs: 6000 });
        if (!stop) {
          setRow(r);
          setError(null);
        }
      } catch (e) {
        if (!stop) setError(e instanceof HttpError && e.status === 404 ? 'not found' : (e as Error).message);
      }
    };
    void load();
    const t = setInterval(() => {
      if (!document.hidden) void load();
    }, running ? 2000 : 6000);
    return () => {
      stop = true;
      clearInterval(t);
    };
  }, [thread, running]);
  return { row, error };
}

export function RunPage({ thread, seq, tab }: { thread: string; seq: string | undefined; tab: string | undefined }) {
  const { store, backfill } = useServices();
  const version = useRunVersion(thread, 200);
  useEffect(() => {
    store.pin(thread);
    backfill.ensure(thread);
    return () => {
      store.unpin(thread);
      backfill.stop(thread);
    };
  }, [store, backfill, thread]);
  // The store may have been cleared (server history changed): start over.
  useEffect(() => {
    if (!store.get(thread)) {
      store.pin(thread);
      backfill.ensure(thread, { force: true });
    }
  }, [store, backfill, thread, version]);
  const run = store.get(thread);
  if (!run) return <div className="empty">Loading…</div>;
  return <RunView run={run} version={version} seq={seq} tab={tab} />;
}

function RunView({ run, version, seq, tab }: { run: RunModel; version: number; seq: string | undefined; tab: string | undefined }) {
  const { store, backfill } = useServices();
  const d = run.derive();
  const integ = run.integrity();
  const steps = d.steps;
  const running = d.status === 'running' || d.status === 'unknown';
  const server = useServerRun(run.thread, running);
  const now = useNow(running ? 1000 : 30_000);

  const [follow, setFollow] = useState(seq === undefined);
  const [sel, setSel] = useState<number | undefined>(undefined);
  const [pendingSeq, setPendingSeq] = useState<string | undefined>(seq);
  const [child, setChild] = useState<string | undefined>(undefined);
  const activeTab: Tab = tab === 'diff' || tab === 'details' ? tab : 'state';

  // Resolve a deep link (?seq=N) once the history around it is loaded.
  useEffect(() => {
    if (pendingSeq === undefined || steps.length === 0) return;
    const s = BigInt(pendingSeq);
    let idx = steps.findIndex((st) => stepCursor(st) === s);
    if (idx < 0) {
      const loaded = run.backfill.state === 'done' || run.backfill.state === 'error' || d.lastSeq >= s;
      if (!loaded) return;
      idx = 0;
      for (let i = 0; i < steps.length; i++) if ((steps[i] as Step).startSeq <= s) idx = i;
    }
    setSel(idx);
    setFollow(false);
    setPendingSeq(undefined);
  }, [pendingSeq, steps, steps.length, version, run.backfill.state, d.lastSeq]);

  const last = steps.length - 1;
  const idx = Math.max(0, Math.min(last, follow ? last : (sel ?? (pendingSeq !== undefined ? last : last))));
  const step = steps[idx];
  const cursor = step ? stepCursor(step) : d.lastSeq;
  const cursorStr = step ? cursor.toString() : undefined;

  // Back/forward to another ?seq: select it.
  useEffect(() => {
    if (seq !== undefined && seq !== cursorStr && pendingSeq === undefined) setPendingSeq(seq);
    if (seq === undefined && !follow && pendingSeq === undefined && sel !== undefined) {
      // the URL lost its seq (e.g. back to the live view)
      setFollow(true);
    }
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [seq]);

  // Reflect the selection in the URL (replace, so the back button leaves the run).
  useEffect(() => {
    if (pendingSeq !== undefined) return;
    const t = setTimeout(() => {
      const base = { view: 'run' as const, thread: run.thread, ...(activeTab !== 'state' ? { tab: activeTab } : {}) };
      navigate(follow || !cursorStr ? base : { ...base, seq: cursorStr }, { replace: true });
    }, 120);
    return () => clearTimeout(t);
  }, [follow, cursorStr, pendingSeq, run.thread, activeTab]);

  const go = useCallback(
    (i: number, childId?: string) => {
      setFollow(false);
      setPendingSeq(undefined);
      setSel(Math.max(0, Math.min(steps.length - 1, i)));
      setChild(childId);
    },
    [steps.length],
  );
  const errorSteps = useMemo(() => steps.filter(stepHasError).map((s) => s.index), [steps, version]); // eslint-disable-line react-hooks/exhaustive-deps
  const nextError = useCallback(
    (dir: 1 | -1) => {
      const list = dir > 0 ? errorSteps.filter((i) => i > idx) : errorSteps.filter((i) => i < idx).reverse();
      if (list[0] !== undefined) go(list[0]);
    },
    [errorSteps, idx, go],
  );
  const setTab = useCallback(
    (t: Tab) => navigate({ view: 'run', thread: run.thread, ...(cursorStr && !follow ? { seq: cursorStr } : {}), ...(t !== 'state' ? { tab: t } : {}) }, { replace: true }),
    [run.thread, cursorStr, follow],
  );

  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (isTyping(e) || e.ctrlKey || e.metaKey || e.altKey) return;
      let handled = true;
      switch (e.key) {
        case 'ArrowLeft':
        case 'h':
        case 'k':
          go(idx - 1);
          break;
        case 'ArrowRight':
        case 'l':
        case 'j':
          go(idx + 1);
          break;
        case 'Home':
          go(0);
          break;
        case 'End':
          go(steps.length - 1);
          break;
        case 'PageUp':
          go(idx - 10);
          break;
        case 'PageDown':
          go(idx + 10);
          break;
        case 'e':
          nextError(1);
          break;
        case 'E':
          nextError(-1);
          break;
        case 'f':
          setFollow((f) => !f);
          setPendingSeq(undefined);
          break;
        case '1':
          setTab('state');
          break;
        case '2':
          setTab('diff');
          break;
        case '3':
          setTab('details');
          break;
        case '/': {
          const el = document.querySelector<HTMLInputElement>('[data-testid="state-search"]');
          if (el) el.focus();
          else handled = false;
          break;
        }
        case 'Escape':
          navigate({ view: 'runs' });
          break;
        default:
          handled = false;
      }
      if (handled) e.preventDefault();
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, [go, idx, steps.length, nextError, setTab]);

  const nodeViews = useMemo(() => nodesAt(steps, cursor, step), [steps, cursor, step, version]); // eslint-disable-line react-hooks/exhaustive-deps
  const edgeCounts = useMemo(() => edgesAt(d.edges, cursor), [d.edges, cursor, version]); // eslint-disable-line react-hooks/exhaustive-deps
  const edgesTakenAll = useMemo(() => {
    const m = new Map<string, [string, string]>();
    for (const e of d.edges) m.set(`${e.from}→${e.to}`, [e.from, e.to]);
    return [...m.values()];
  }, [d.edges, d.edges.length]); // eslint-disable-line react-hooks/exhaustive-deps
  const nodesSeen = useMemo(() => new Set(d.nodesSeen), [d.nodesSeen, d.nodesSeen.size]); // eslint-disable-line react-hooks/exhaustive-deps

  const after = versionAt(d.states, cursor);
  const before = step && step.kind !== 'start' ? versionAt(d.states, step.startSeq - 1n) : undefined;
  const wireDiffs = useMemo(() => {
    if (!step) return [];
    const out: StateRec[] = [];
    for (const r of run.records()) {
      if (r.seq < step.startSeq) continue;
      if (r.seq > cursor) break;
      if (r.kind === 'state') out.push(r);
    }
    return out;
  }, [run, step, cursor, version]); // eslint-disable-line react-hooks/exhaustive-deps
  const verify = useCallback(() => {
    if (after) void store.verifier.verifyNow(run, after).then(() => store.notify());
  }, [after, run, store]);

  const onSelectNode = useCallback(
    (name: string) => {
      let pick = -1;
      for (const s of steps) {
        const names = s.kind === 'parallel' ? (s.branches ?? []) : [s.node];
        if (!names.includes(name)) continue;
        if (s.startSeq <= cursor || pick < 0) pick = s.index;
        if (s.startSeq > cursor) break;
      }
      if (pick >= 0) go(pick);
    },
    [steps, cursor, go],
  );

  const startMs = d.startUs ? d.startUs / 1000 : server.row?.started_at ? Date.parse(server.row.started_at) : undefined;
  const endMs = d.endUs ? d.endUs / 1000 : running ? now : d.lastUs / 1000;
  const bf = run.backfill;
  const status = d.status === 'unknown' ? (server.row?.status ?? 'running') : d.status;
  const graphName = d.graphName || server.row?.graph_name || '';
  const errMarks = useMemo(() => errorSteps.map((i) => (steps.length > 1 ? (i / (steps.length - 1)) * 100 : 0)), [errorSteps, steps.length]);

  if (server.error === 'not found' && run.recordCount === 0) {
    return (
      <div className="empty-page">
        <h1>Run not found</h1>
        <p className="muted">
          No retained records for thread <code>{run.thread}</code>.
        </p>
        <a href="/" onClick={linkClick({ view: 'runs' })}>
          ← All runs
        </a>
      </div>
    );
  }

  const unknownReason =
    bf.state === 'loading'
      ? 'Loading the run history…'
      : integ.historyStartsAt !== undefined
        ? `The server no longer retains this run before seq ${integ.historyStartsAt}; the state is known from the first full state after that.`
        : 'State unknown at this step (no baseline yet).';

  return (
    <div className="run-page" data-testid="run-page" data-thread={run.thread}>
      <div className="run-head">
        <a href="/" onClick={linkClick({ view: 'runs' })} className="back" title="All runs (Esc)">
          ← Runs
        </a>
        <h1 className="run-title">{graphName || 'run'}</h1>
        <StatusBadge status={status} live={running && run.lastLiveAt > 0 && performance.now() - run.lastLiveAt < 3000} />
        <button className="chip mono" title={`${run.thread} (click to copy)`} onClick={() => void copyText(run.thread)}>
          {shortId(run.thread, 13)}
        </button>
        <span className="muted small">
          started {startMs ? fmtTime(startMs) : '—'} · {startMs ? fmtDurationMs(endMs - startMs) : '—'}
          {d.trace ? ` · ${fmtInt(d.trace.totalTokens)} tokens` : d.tokens ? ` · ${fmtInt(d.tokens)} tokens` : ''}
        </span>
        <span className="grow" />
        <span className="small" data-testid="run-message-count" data-count={run.messageCount} title="Kafka records of this run applied in this tab">
          {fmtInt(run.messageCount)} messages
        </span>
        {server.row && (
          <span className="muted small" data-testid="run-server-count" data-count={server.row.messages} title="What the server holds for this run">
            (server {fmtInt(server.row.messages)})
          </span>
        )}
        <BackfillStatus run={run} onRetry={() => backfill.ensure(run.thread, { force: true })} />
        <IntegrityBadge run={run} />
      </div>
      <div className="run-controls" role="toolbar" aria-label="Time travel">
        <button className="btn small" onClick={() => go(0)} disabled={idx <= 0} title="First visit (Home)" aria-label="First visit">
          <IconFirst />
        </button>
        <button className="btn small" onClick={() => go(idx - 1)} disabled={idx <= 0} title="Previous visit (←)" data-testid="step-prev" aria-label="Previous visit">
          <IconPrev />
        </button>
        <div className="slider-wrap">
          <input
            type="range"
            min={0}
            max={Math.max(0, last)}
            value={idx}
            onChange={(e) => go(Number(e.target.value))}
            aria-label="Node visit"
            data-testid="step-slider"
            disabled={steps.length <= 1}
          />
          <div className="slider-marks" aria-hidden>
            {errMarks.map((p, i) => (
              <span key={i} className="mark-err" style={{ left: `${p}%` }} />
            ))}
          </div>
        </div>
        <button className="btn small" onClick={() => go(idx + 1)} disabled={idx >= last} title="Next visit (→)" data-testid="step-next" aria-label="Next visit">
          <IconNext />
        </button>
        <button className="btn small" onClick={() => go(last)} disabled={idx >= last} title="Last visit (End)" aria-label="Last visit">
          <IconLast />
        </button>
        <span className="step-label" data-testid="step-label" data-index={idx} data-seq={cursorStr ?? ''}>
          {step ? (
            <>
              {idx + 1} / {steps.length} · <b>{step.kind === 'node' ? step.node : step.kind === 'parallel' ? 'parallel' : step.kind === 'start' ? 'start' : 'end'}</b>
              {step.kind === 'node' && step.visit > 1 ? ` #${step.visit}` : ''} · seq {cursorStr}
            </>
          ) : (
            'no steps yet'
          )}
        </span>
        <button className="btn small" onClick={() => nextError(1)} disabled={!errorSteps.some((i) => i > idx)} title="Next error (e)" data-testid="next-error">
          Next error{errorSteps.length ? ` (${errorSteps.length})` : ''}
        </button>
        <button
          className={`btn small${follow ? ' on' : ''}`}
          onClick={() => {
            setFollow((f) => !f);
            setPendingSeq(undefined);
          }}
          aria-pressed={follow}
          title="Follow this run live (f)"
          data-testid="follow-live"
        >
          {follow ? '● Following' : 'Follow live'}
        </button>
      </div>
      <IntegrityBanner run={run} />
      <div className="run-body">
        <section className="pane graph-pane" aria-label="Graph">
          <GraphView
            schema={d.schema}
            nodesSeen={nodesSeen}
            edgesTakenAll={edgesTakenAll}
            nodeViews={nodeViews}
            edgeCounts={edgeCounts}
            currentNode={step?.kind === 'node' ? step.node : step?.kind === 'parallel' ? step.branches?.[0] : step?.node}
            onSelectNode={onSelectNode}
            track={true}
          />
        </section>
        <section className="pane timeline-pane" aria-label="Timeline">
          <Timeline
            steps={steps}
            version={version}
            selected={idx}
            selectedChild={child}
            runStartUs={d.startUs || (steps[0]?.startUs ?? 0)}
            runEndUs={d.endUs ?? Math.max(d.lastUs, running ? now * 1000 : 0)}
            onSelect={(i, c) => {
              go(i, c);
              if (c) setTab('details');
            }}
          />
        </section>
        <section className="pane right-pane" aria-label="Step">
          <div className="tabs" role="tablist">
            {(['state', 'diff', 'details'] as Tab[]).map((t, i) => (
              <button key={t} role="tab" aria-selected={activeTab === t} className={activeTab === t ? 'tab on' : 'tab'} onClick={() => setTab(t)} data-testid={`tab-${t}`}>
                {t === 'state' ? 'State' : t === 'diff' ? 'Diff' : 'Details'} <kbd>{i + 1}</kbd>
              </button>
            ))}
            <span className="grow" />
            {step && (
              <span className="muted small">
                {stepHeading(step, d.startUs, d.endUs)}
                {step.startUs ? ` · ${fmtTime(usToDate(step.startUs))}` : ''}
              </span>
            )}
          </div>
          <div className="tab-body">
            {activeTab === 'state' && <StateViewer version={after} verify={verify} unknownReason={unknownReason} />}
            {activeTab === 'diff' && <DiffView before={before} after={after && step && after.seq >= step.startSeq ? after : undefined} diffs={wireDiffs} />}
            {activeTab === 'details' && <StepDetails step={step} selectedChild={child} />}
          </div>
        </section>
      </div>
    </div>
  );
}

/** "agent #3 · 1.2 s"; the run's span (from timestamps) for its end. */
function stepHeading(step: Step, runStartUs: number, runEndUs: number | undefined): string {
  if (step.kind === 'start') return 'graph start';
  if (step.kind === 'end') return runEndUs && runStartUs ? `graph end · run took ${fmtDurationUs(runEndUs - runStartUs)}` : 'graph end';
  const name = step.kind === 'node' ? `${step.node} #${step.visit}` : 'parallel';
  return `${name} · ${fmtDurationUs(step.durUs)}`;
}

function BackfillStatus({ run, onRetry }: { run: RunModel; onRetry: () => void }) {
  const b = run.backfill;
  return (
    <span className={`small backfill bf-${b.state}`} data-testid="backfill-status" data-state={b.state}>
      {b.state === 'loading' && `loading history… ${fmtInt(b.records)}${b.expected ? ` / ${fmtInt(b.expected)}` : ''}`}
      {b.state === 'done' && 'history loaded'}
      {b.state === 'error' && (
        <>
          history failed: {b.error}{' '}
          <button className="btn small" onClick={onRetry}>
            Retry
          </button>
        </>
      )}
    </span>
  );
}

function IntegrityBadge({ run }: { run: RunModel }) {
  const i = run.integrity();
  const d = run.derive();
  // States with something to check: a state_hash, or a checkpoint checksum.
  const checkable = d.states.filter((v) => v.expected || (v.source === 'checkpoint' && (v.verify === 'ok' || v.verify === 'mismatch')));
  const verified = checkable.filter((v) => v.verify === 'ok').length;
  const withHash = checkable.length;
  let text: string;
  let cls: string;
  if (i.mismatches.length || i.errors.length) {
    text = `✗ ${i.mismatches.length + i.errors.length} state problem${i.mismatches.length + i.errors.length === 1 ? '' : 's'}`;
    cls = 'bad';
  } else if (i.gaps.length) {
    text = `⚠ ${i.gaps.length} gap${i.gaps.length === 1 ? '' : 's'}`;
    cls = 'warn';
  } else if (i.stateUnknown) {
    text = 'state not loaded';
    cls = 'muted';
  } else {
    text = `✓ ${verified}/${withHash} states verified`;
    cls = 'ok';
  }
  return (
    <span className={`integrity ${cls} small`} data-testid="integrity" data-ok={i.ok} title="Sequence contiguity and state hashes of this run">
      {text}
    </span>
  );
}

function IntegrityBanner({ run }: { run: RunModel }) {
  const i = run.integrity();
  const items: React.ReactNode[] = [];
  for (const g of i.gaps.slice(0, 3)) {
    const n = g.to - g.from + 1n;
    items.push(
      <li key={`g${g.from}`}>
        sequence gap: seq {g.from.toString()}
        {g.to !== g.from ? `–${g.to.toString()}` : ''} missing ({n.toString()} message{n === 1n ? '' : 's'})
      </li>,
    );
  }
  if (i.gaps.length > 3) items.push(<li key="more">… {i.gaps.length - 3} more gaps</li>);
  for (const m of i.mismatches.slice(0, 3)) {
    items.push(
      <li key={`m${m.seq}`}>
        state hash mismatch at seq {m.seq.toString()} (expected {shortId(m.expected, 10)}, computed {shortId(m.computed, 10)})
      </li>,
    );
  }
  for (const e of i.errors.slice(0, 3)) items.push(<li key={`e${e.seq}`}>state diff at seq {e.seq.toString()} not applied: {e.error}</li>);
  if (i.duplicates || i.reorders || i.conflicts) {
    // Informational: handled, shown for transparency.
  }
  if (items.length === 0 && i.staleSince === undefined) return null;
  return (
    <div className={`banner ${i.mismatches.length || i.errors.length ? 'error' : 'warn'} integrity-banner`} data-testid="integrity-banner" role="status">
      {i.staleSince !== undefined && (
        <div data-testid="stale-banner" data-since={i.staleSince.toString()}>
          <b>State may be stale since seq {i.staleSince.toString()}</b> — it is trusted again when a full state arrives or a later state hash checks out.
        </div>
      )}
      {items.length > 0 && <ul>{items}</ul>}
    </div>
  );
}
