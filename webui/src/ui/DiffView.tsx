// What the selected step changed: a nested, path-level diff between the
// state before the visit and after it, and the raw patch operations.
import { useMemo, useState } from 'react';
import { diffJson, formatPath, type Change } from '../lib/diff';
import { preview, stringifyPretty, type JsonValue } from '../lib/json';
import type { StateVersion } from '../store/derive';
import type { StateRec } from '../lib/types';

export interface DiffViewProps {
  before: StateVersion | undefined;
  after: StateVersion | undefined;
  diffs: StateRec[];
}

function Value({ v }: { v: JsonValue | undefined }) {
  const [open, setOpen] = useState(false);
  if (v === undefined) return <span className="muted">—</span>;
  const short = preview(v, 90);
  const full = typeof v === 'object' && v !== null ? stringifyPretty(v) : typeof v === 'string' ? v : short;
  if (full.length <= 90 && !full.includes('\n')) return <span className="mono">{short}</span>;
  return (
    <span>
      <button className="linklike mono" onClick={() => setOpen((o) => !o)} aria-expanded={open}>
        {short}
      </button>
      {open && <pre className="raw small">{full}</pre>}
    </span>
  );
}

function ChangeRow({ c }: { c: Change }) {
  const sym = c.kind === 'added' ? '+' : c.kind === 'removed' ? '−' : '~';
  return (
    <div className={`diff-row d-${c.kind}`} data-testid="diff-change" data-kind={c.kind}>
      <span className="diff-sym" aria-label={c.kind}>
        {sym}
      </span>
      <span className="diff-path mono">{formatPath(c.path)}</span>
      <span className="diff-vals">
        {c.kind === 'changed' ? (
          <>
            <Value v={c.before} /> <span className="muted">→</span> <Value v={c.after} />
          </>
        ) : c.kind === 'added' ? (
          <Value v={c.after} />
        ) : (
          <Value v={c.before} />
        )}
      </span>
    </div>
  );
}

export function DiffView({ before, after, diffs }: DiffViewProps) {
  const [showOps, setShowOps] = useState(false);
  const result = useMemo(() => {
    if (!after || after.state === undefined) return undefined;
    if (before && before.state === undefined) return undefined;
    return diffJson(before?.state, after.state);
  }, [before, after]);
  const counts = useMemo(() => {
    const c = { added: 0, removed: 0, changed: 0 };
    for (const x of result?.changes ?? []) c[x.kind]++;
    return c;
  }, [result]);
  if (!after) return <div className="empty">No state change in this step.</div>;
  return (
    <div className="diff-view" data-testid="state-diff">
      <div className="diff-head small">
        {before ? (
          <>
            seq {before.seq.toString()} → {after.seq.toString()} ·{' '}
          </>
        ) : (
          'initial state · '
        )}
        <span className="d-added">+{counts.added}</span> <span className="d-changed">~{counts.changed}</span>{' '}
        <span className="d-removed">−{counts.removed}</span>
        {diffs.length > 0 && (
          <button className="btn ghost small" onClick={() => setShowOps((s) => !s)} aria-expanded={showOps}>
            {showOps ? 'Hide' : 'Show'} wire diffs ({diffs.length})
          </button>
        )}
      </div>
      {result === undefined ? (
        <div className="empty">The state before or after this step is unknown (history not loaded or a diff failed).</div>
      ) : result.changes.length === 0 ? (
        <div className="empty">This step did not change the state.</div>
      ) : (
        <div className="diff-list">
          {result.changes.map((c, i) => (
            <ChangeRow key={i} c={c} />
          ))}
          {result.truncated && <div className="muted small">… more changes not shown</div>}
        </div>
      )}
      {showOps && (
        <div className="ops">
          {diffs.map((d) => (
            <div key={d.seq.toString()} className="ops-item">
              <div className="small muted">
                StateDiff seq {d.seq.toString()} · {d.full !== undefined ? 'full_state' : `${d.ops?.length ?? 0} operations`} · hash {d.hash.slice(0, 12)}…
              </div>
              {d.ops && (
                <pre className="raw small">
                  {d.ops
                    .map((o) => `${o.op.padEnd(7)} ${o.path}${o.from ? ` from ${o.from}` : ''}${o.value !== undefined ? ` = ${preview(o.value, 120)}` : ''}`)
                    .join('\n')}
                </pre>
              )}
              {d.error && <div className="bad small">{d.error}</div>}
            </div>
          ))}
        </div>
      )}
    </div>
  );
}
