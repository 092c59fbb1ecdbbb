// The state at the selected step: a JSON tree with search and copy, the
// pretty JSON, or the exact canonical text the state hash is computed over,
// with the hash check's result.
import { memo, useCallback, useEffect, useMemo, useRef, useState } from 'react';
import { canonicalJson } from '../lib/canonical';
import { isContainer, JsonFloat, formatFloatLiteral, preview, stringifyPretty, type JsonValue } from '../lib/json';
import { escapeToken } from '../lib/patch';
import type { StateVersion } from '../store/derive';
import { shortId } from './format';

type Mode = 'tree' | 'json' | 'canonical';

export async function copyText(text: string): Promise<boolean> {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    const ta = document.createElement('textarea');
    ta.value = text;
    ta.style.position = 'fixed';
    ta.style.opacity = '0';
    document.body.appendChild(ta);
    ta.select();
    let ok = false;
    try {
      ok = document.execCommand('copy');
    } catch {
      ok = false;
    }
    ta.remove();
    return ok;
  }
}

const MAX_MATCHES = 500;

function findMatches(v: JsonValue, q: string): string[] {
  const out: string[] = [];
  const needle = q.toLowerCase();
  const walk = (x: JsonValue, path: string, key: string) => {
    if (out.length >= MAX_MATCHES) return;
    if (key && key.toLowerCase().includes(needle)) out.push(path);
    else if (!isContainer(x)) {
      const s = x instanceof JsonFloat ? formatFloatLiteral(x.value) : typeof x === 'string' ? x : String(x);
      if (s.toLowerCase().includes(needle)) out.push(path);
    }
    if (Array.isArray(x)) x.forEach((e, i) => walk(e, `${path}/${i}`, ''));
    else if (isContainer(x)) for (const k of Object.keys(x)) walk(x[k] as JsonValue, `${path}/${escapeToken(k)}`, k);
  };
  walk(v, '', '');
  return out;
}

function ancestors(path: string): string[] {
  const out = [''];
  let i = path.indexOf('/', 1);
  while (i > 0) {
    out.push(path.slice(0, i));
    i = path.indexOf('/', i + 1);
  }
  return out;
}

function allContainers(v: JsonValue, maxDepth: number, cap = 3000): Set<string> {
  const out = new Set<string>();
  const walk = (x: JsonValue, path: string, d: number) => {
    if (out.size >= cap || !isContainer(x) || d > maxDepth) return;
    out.add(path);
    if (Array.isArray(x)) x.forEach((e, i) => walk(e, `${path}/${i}`, d + 1));
    else for (const k of Object.keys(x)) walk(x[k] as JsonValue, `${path}/${escapeToken(k)}`, d + 1);
  };
  walk(v, '', 0);
  return out;
}

interface TreeCtx {
  expanded: Set<string>;
  toggle: (path: string) => void;
  matches: Set<string>;
  current: string | undefined;
  query: string;
  onCopy: (v: JsonValue) => void;
}

function Highlight({ text, q }: { text: string; q: string }) {
  if (!q) return <>{text}</>;
  const i = text.toLowerCase().indexOf(q.toLowerCase());
  if (i < 0) return <>{text}</>;
  return (
    <>
      {text.slice(0, i)}
      <mark>{text.slice(i, i + q.length)}</mark>
      {text.slice(i + q.length)}
    </>
  );
}

function Scalar({ v, q }: { v: JsonValue; q: string }) {
  if (v === null) return <span className="j-null">null</span>;
  if (typeof v === 'boolean') return <span className="j-bool">{String(v)}</span>;
  if (typeof v === 'number') return <span className="j-num">{String(v)}</span>;
  if (typeof v === 'bigint') return <span className="j-num">{v.toString()}</span>;
  if (v instanceof JsonFloat) return <span className="j-num">{formatFloatLiteral(v.value)}</span>;
  if (typeof v === 'string') return <StringValue v={v} q={q} />;
  return null;
}

function StringValue({ v, q }: { v: string; q: string }) {
  const [open, setOpen] = useState(false);
  const long = v.length > 140 || v.includes('\n');
  if (!long) {
    return (
      <span className="j-str">
        "<Highlight text={v} q={q} />"
      </span>
    );
  }
  if (open) {
    return (
      <span className="j-str-block">
        <button className="linklike small" onClick={() => setOpen(false)}>
          collapse ({v.length} chars)
        </button>
        <pre className="j-str j-pre">
          <Highlight text={v} q={q} />
        </pre>
      </span>
    );
  }
  const oneLine = v.slice(0, 140).replace(/\n/g, ' ⏎ ');
  return (
    <span className="j-str j-str-short" onClick={() => setOpen(true)} title={`${v.length} characters — click to expand`}>
      "<Highlight text={oneLine} q={q} />…"
      <span className="muted small"> ({v.length})</span>
    </span>
  );
}

const PAGE = 200;

const TreeNode = memo(function TreeNode({ k, value, path, ctx }: { k: string; value: JsonValue; path: string; ctx: TreeCtx }) {
  const [limit, setLimit] = useState(PAGE);
  const container = isContainer(value);
  const open = container && ctx.expanded.has(path);
  const isMatch = ctx.matches.has(path);
  const isCurrent = ctx.current === path;
  const keyEl = k !== '' ? (
    <span className="j-key">
      <Highlight text={k} q={ctx.query} />
      <span className="j-colon">: </span>
    </span>
  ) : null;
  if (!container) {
    return (
      <div className={`j-row${isMatch ? ' match' : ''}${isCurrent ? ' current' : ''}`} data-path={path}>
        <span className="j-caret-space" />
        {keyEl}
        <Scalar v={value} q={ctx.query} />
        <button className="j-copy" onClick={() => ctx.onCopy(value)} title="Copy value" aria-label={`Copy ${k || 'value'}`}>
          ⧉
        </button>
      </div>
    );
  }
  const entries: [string, JsonValue][] = Array.isArray(value)
    ? value.map((e, i) => [String(i), e])
    : Object.keys(value).map((key) => [key, (value as Record<string, JsonValue>)[key] as JsonValue]);
  return (
    <div className="j-node">
      <div className={`j-row${isMatch ? ' match' : ''}${isCurrent ? ' current' : ''}`} data-path={path}>
        <button className="j-caret" onClick={() => ctx.toggle(path)} aria-expanded={open} aria-label={`${open ? 'Collapse' : 'Expand'} ${k || 'root'}`}>
          {open ? '▾' : '▸'}
        </button>
        {keyEl}
        <span className="j-preview" onClick={() => ctx.toggle(path)}>
          {open ? (Array.isArray(value) ? `[${value.length}]` : `{${entries.length}}`) : preview(value, 60)}
        </span>
        <button className="j-copy" onClick={() => ctx.onCopy(value)} title="Copy value" aria-label={`Copy ${k || 'state'}`}>
          ⧉
        </button>
      </div>
      {open && (
        <div className="j-children">
          {entries.slice(0, limit).map(([ck, cv]) => (
            <TreeNode key={ck} k={ck} value={cv} path={`${path}/${escapeToken(ck)}`} ctx={ctx} />
          ))}
          {entries.length > limit && (
            <button className="btn ghost small j-more" onClick={() => setLimit((l) => l + PAGE)}>
              show {Math.min(PAGE, entries.length - limit)} more of {entries.length - limit}
            </button>
          )}
        </div>
      )}
    </div>
  );
});

export interface StateViewerProps {
  version: StateVersion | undefined;
  verify: () => void;
  unknownReason?: string;
}

export function StateViewer({ version, verify, unknownReason }: StateViewerProps) {
  const [mode, setMode] = useState<Mode>('tree');
  const [query, setQuery] = useState('');
  const [cur, setCur] = useState(0);
  const [manual, setManual] = useState<Set<string>>(() => new Set(['']));
  const [toast, setToast] = useState('');
  const body = useRef<HTMLDivElement>(null);
  const searchRef = useRef<HTMLInputElement>(null);
  const state = version?.state;

  // A version that was deferred under load is verified when shown.
  useEffect(() => {
    if (version && (version.verify === 'deferred' || version.verify === 'pending')) verify();
  }, [version, verify]);

  const matches = useMemo(() => (state !== undefined && query.length >= 1 ? findMatches(state, query) : []), [state, query]);
  const matchSet = useMemo(() => new Set(matches), [matches]);
  const current = matches.length ? matches[Math.min(cur, matches.length - 1)] : undefined;
  const expanded = useMemo(() => {
    const s = new Set(manual);
    if (current !== undefined) for (const a of ancestors(current)) s.add(a);
    for (const m of matches.slice(0, 50)) for (const a of ancestors(m)) s.add(a);
    return s;
  }, [manual, matches, current]);

  useEffect(() => setCur(0), [query]);
  useEffect(() => {
    if (current === undefined || !body.current) return;
    const el = body.current.querySelector<HTMLElement>(`[data-path="${CSS.escape(current)}"]`);
    el?.scrollIntoView({ block: 'center' });
  }, [current, expanded]);

  const toggle = useCallback((path: string) => {
    setManual((m) => {
      const n = new Set(m);
      if (n.has(path)) n.delete(path);
      else n.add(path);
      return n;
    });
  }, []);
  const flash = (t: string) => {
    setToast(t);
    setTimeout(() => setToast(''), 1500);
  };
  const onCopy = useCallback((v: JsonValue) => {
    void copyText(stringifyPretty(v)).then((ok) => flash(ok ? 'Copied' : 'Copy failed'));
  }, []);
  const ctx: TreeCtx = { expanded, toggle, matches: matchSet, current, query, onCopy };

  const expandAll = () => state !== undefined && setManual(allContainers(state, 4));
  const collapseAll = () => setManual(new Set(['']));
  const onKey = (e: React.KeyboardEvent) => {
    if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === 'e') {
      e.preventDefault();
      if (manual.size > 1) collapseAll();
      else expandAll();
    }
  };

  const canonical = useMemo(() => (mode === 'canonical' && state !== undefined ? canonicalJson(state) : ''), [mode, state]);
  const pretty = useMemo(() => (mode === 'json' && state !== undefined ? stringifyPretty(state) : ''), [mode, state]);

  return (
    <div
      className="state-viewer"
      data-testid="state-viewer"
      data-seq={version?.seq.toString() ?? ''}
      data-hash={version?.expected ?? ''}
      data-verify={version?.verify ?? ''}
      onKeyDown={onKey}
    >
      <div className="sv-toolbar">
        <div className="seg" role="tablist" aria-label="State view">
          {(['tree', 'json', 'canonical'] as Mode[]).map((m) => (
            <button key={m} role="tab" aria-selected={mode === m} className={mode === m ? 'seg-on' : ''} onClick={() => setMode(m)} data-testid={`state-mode-${m}`}>
              {m === 'tree' ? 'Tree' : m === 'json' ? 'JSON' : 'Canonical'}
            </button>
          ))}
        </div>
        <input
          ref={searchRef}
          className="sv-search"
          type="search"
          placeholder="Search keys and values"
          value={query}
          onChange={(e) => setQuery(e.target.value)}
          onKeyDown={(e) => {
            if (e.key === 'Enter') {
              e.preventDefault();
              setCur((c) => (matches.length ? (c + (e.shiftKey ? matches.length - 1 : 1)) % matches.length : 0));
            } else if (e.key === 'Escape') {
              setQuery('');
              (e.target as HTMLElement).blur();
            }
          }}
          data-testid="state-search"
          aria-label="Search the state"
        />
        {query && (
          <span className="small muted" data-testid="state-search-count">
            {matches.length ? `${Math.min(cur, matches.length - 1) + 1} / ${matches.length}${matches.length >= MAX_MATCHES ? '+' : ''}` : 'no match'}
          </span>
        )}
        <span className="grow" />
        <button className="btn ghost small" onClick={expandAll} title="Expand all (Ctrl+E)" disabled={mode !== 'tree'}>
          ⊞
        </button>
        <button className="btn ghost small" onClick={collapseAll} title="Collapse all" disabled={mode !== 'tree'}>
          ⊟
        </button>
        <button
          className="btn ghost small"
          data-testid="state-copy"
          disabled={state === undefined}
          onClick={() => state !== undefined && void copyText(mode === 'canonical' ? canonicalJson(state) : stringifyPretty(state)).then((ok) => flash(ok ? 'Copied' : 'Copy failed'))}
        >
          Copy
        </button>
      </div>
      <VerifyLine version={version} />
      <div className="sv-body" ref={body} tabIndex={0}>
        {state === undefined ? (
          <div className="empty">{version ? unknownReason ?? 'State unknown at this step.' : 'No state yet.'}</div>
        ) : mode === 'tree' ? (
          <div className="jtree">
            <TreeNode k="" value={state} path="" ctx={ctx} />
          </div>
        ) : (
          <pre className="raw" data-testid="state-raw" data-mode={mode}>
            {mode === 'canonical' ? canonical : pretty}
          </pre>
        )}
      </div>
      {toast && <div className="toast">{toast}</div>}
    </div>
  );
}

function VerifyLine({ version }: { version: StateVersion | undefined }) {
  if (!version) return null;
  const src =
    version.source === 'initial'
      ? 'initial state (GRAPH_START)'
      : version.source === 'full'
        ? 'full state'
        : version.source === 'checkpoint'
          ? 'checkpoint'
          : version.source === 'empty'
            ? 'unchanged'
            : `patch (${version.ops?.length ?? 0} ops)`;
  let v: React.ReactNode;
  switch (version.verify) {
    case 'ok':
      v = <span className="ok">✓ state hash verified</span>;
      break;
    case 'mismatch':
      v = (
        <span className="bad">
          ✗ hash mismatch: expected {shortId(version.expected, 12)}, computed {shortId(version.computed ?? '', 12)}
        </span>
      );
      break;
    case 'pending':
    case 'deferred':
      v = <span className="muted">checking hash…</span>;
      break;
    case 'error':
      v = <span className="bad">✗ {version.error}</span>;
      break;
    case 'unknown':
      v = <span className="warn">state unknown (no baseline loaded)</span>;
      break;
    default:
      v = <span className="muted">no hash sent</span>;
  }
  return (
    <div className="sv-verify small" data-testid="state-verify">
      <span className="mono">seq {version.seq.toString()}</span> · {src} · {v}
    </div>
  );
}
