// Waterfall of node visits, with each visit's LLM streams, tool calls and
// warnings nested under it. Virtualised: only the visible rows exist.
import { memo, useEffect, useMemo, useRef, useState } from 'react';
import type { Child, Step } from '../store/derive';
import { fmtDurationUs } from './format';
import { IconError, IconLlm, IconTool, IconWarn } from './icons';

const ROW_H = 26;
const OVERSCAN = 12;

type Row = { kind: 'step'; step: Step } | { kind: 'child'; step: Step; child: Child };

export interface TimelineProps {
  steps: readonly Step[];
  version: number;
  selected: number;
  selectedChild: string | undefined;
  runStartUs: number;
  runEndUs: number;
  onSelect: (index: number, childId?: string) => void;
}

function childVisible(c: Child): boolean {
  return c.kind !== 'note' || c.level !== 'info';
}

export const Timeline = memo(function Timeline({ steps, version, selected, selectedChild, runStartUs, runEndUs, onSelect }: TimelineProps) {
  const rows = useMemo(() => {
    const out: Row[] = [];
    for (const s of steps) {
      out.push({ kind: 'step', step: s });
      for (const c of s.children) if (childVisible(c)) out.push({ kind: 'child', step: s, child: c });
    }
    return out;
    // steps is mutated in place as records arrive; version tracks that.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [steps, version]);
  const stepRow = useMemo(() => {
    const m = new Map<number, number>();
    rows.forEach((r, i) => {
      if (r.kind === 'step') m.set(r.step.index, i);
    });
    return m;
  }, [rows]);
  const scroller = useRef<HTMLDivElement>(null);
  const [scrollTop, setScrollTop] = useState(0);
  const [height, setHeight] = useState(400);
  // Where the list is scrolled, tracked without reading the DOM (a read would force a layout).
  const scrollPos = useRef(0);
  useEffect(() => {
    const el = scroller.current;
    if (!el) return;
    const ro = new ResizeObserver(() => setHeight(el.clientHeight));
    ro.observe(el);
    setHeight(el.clientHeight);
    return () => ro.disconnect();
  }, []);
  // Keep the selected visit in view.
  useEffect(() => {
    const el = scroller.current;
    const r = stepRow.get(selected);
    if (!el || r === undefined) return;
    const top = r * ROW_H;
    const cur = scrollPos.current;
    let next: number | undefined;
    if (top < cur + ROW_H) next = Math.max(0, top - ROW_H * 2);
    else if (top + ROW_H > cur + height - ROW_H) next = top - height + ROW_H * 3;
    if (next !== undefined) {
      scrollPos.current = next;
      el.scrollTop = next;
      setScrollTop(next);
    }
  }, [selected, stepRow, height]);

  const first = Math.max(0, Math.floor(scrollTop / ROW_H) - OVERSCAN);
  const last = Math.min(rows.length, Math.ceil((scrollTop + height) / ROW_H) + OVERSCAN);
  const span = Math.max(1, runEndUs - runStartUs);
  const bar = (startUs: number, endUs: number | undefined) => {
    const left = Math.min(100, Math.max(0, ((startUs - runStartUs) / span) * 100));
    const end = endUs ?? runEndUs;
    const width = Math.max(0.4, Math.min(100 - left, ((end - startUs) / span) * 100));
    return { left: `${left}%`, width: `${width}%` };
  };

  return (
    <div className="timeline" role="listbox" aria-label="Node visits" aria-activedescendant={`tl-step-${selected}`}>
      <div className="timeline-head">
        <span>Visit</span>
        <span className="num">Time</span>
        <span className="wf-head">Waterfall · {fmtDurationUs(span)}</span>
      </div>
      <div
        className="timeline-scroll"
        ref={scroller}
        onScroll={(e) => {
          // Re-render only when the rendered window would change.
          const top = e.currentTarget.scrollTop;
          scrollPos.current = top;
          if (Math.abs(top - scrollTop) >= ROW_H * (OVERSCAN / 2)) setScrollTop(top);
        }}
      >
        <div style={{ height: rows.length * ROW_H, position: 'relative' }}>
          {rows.slice(first, last).map((r, i) => {
            const idx = first + i;
            const style = { top: idx * ROW_H, height: ROW_H };
            if (r.kind === 'step') {
              const s = r.step;
              const sel = s.index === selected;
              const label =
                s.kind === 'start'
                  ? s.partial
                    ? `history before seq ${s.startSeq} not loaded`
                    : 'graph start'
                  : s.kind === 'end'
                    ? s.status === 'error'
                      ? 'graph error'
                      : 'graph end'
                    : s.kind === 'parallel'
                      ? `∥ ${s.branches?.join(', ') ?? s.node}`
                      : s.node;
              return (
                <div
                  key={`s${s.index}`}
                  id={`tl-step-${s.index}`}
                  className={`tl-row tl-step st-${s.status}${sel ? ' selected' : ''}`}
                  style={style}
                  data-testid="timeline-item"
                  data-step={s.index}
                  data-node={s.node}
                  data-status={s.status}
                  role="option"
                  aria-selected={sel}
                  onClick={() => onSelect(s.index)}
                  title={s.error ?? `${label} · seq ${s.startSeq}${s.endSeq !== undefined ? `–${s.endSeq}` : '…'}`}
                >
                  <span className="tl-name">
                    <span className={`sdot st-${s.status}`} aria-hidden />
                    {label}
                    {s.kind === 'node' && s.visit > 1 ? <span className="muted"> #{s.visit}</span> : null}
                  </span>
                  <span className="tl-dur num">{s.kind === 'node' || s.kind === 'parallel' ? fmtDurationUs(s.durUs ?? (s.status === 'active' ? undefined : 0)) : ''}</span>
                  <span className="tl-wf">
                    {s.kind !== 'start' || !s.partial ? <span className={`wf-bar st-${s.status}`} style={bar(s.startUs, s.endUs)} /> : null}
                  </span>
                </div>
              );
            }
            const c = r.child;
            const selC = r.step.index === selected && selectedChild === c.id;
            let icon: React.ReactNode = null;
            let text = '';
            let dur: number | undefined;
            let cls = '';
            let startUs = r.step.startUs;
            let endUs: number | undefined = r.step.endUs;
            if (c.kind === 'llm') {
              icon = <IconLlm size={12} className="ic-llm" />;
              text = `${c.model || 'LLM'} · ${c.tokens || c.chunks} ${c.tokens ? 'tokens' : 'chunks'}${c.final ? '' : ' · streaming…'}`;
              dur = c.endUs - c.startUs;
              startUs = c.startUs;
              endUs = c.final ? c.endUs : undefined;
            } else if (c.kind === 'tool') {
              icon = <IconTool size={12} className="ic-tool" />;
              text = `${c.tool}${c.retries ? ` · retry ${c.retries}` : ''}${c.error && c.stage === 4 ? ' · failed' : ''}`;
              dur = c.durUs || c.endUs - c.startUs;
              startUs = c.startUs;
              endUs = c.stage === 3 || c.stage === 4 ? c.endUs : undefined;
              if (c.failures > 0) cls = ' warn';
            } else {
              icon = c.level === 'error' ? <IconError size={12} /> : <IconWarn size={12} />;
              text = `${c.label}: ${c.text}`;
              cls = c.level === 'error' ? ' err' : ' warn';
              startUs = c.tsUs;
              endUs = c.tsUs;
            }
            return (
              <div
                key={`c${r.step.index}-${c.id}`}
                className={`tl-row tl-child${cls}${selC ? ' selected' : ''}`}
                style={style}
                onClick={() => onSelect(r.step.index, c.id)}
                data-testid="timeline-child"
                data-kind={c.kind}
                title={text}
              >
                <span className="tl-name">
                  <span className="tl-icon" aria-hidden>
                    {icon}
                  </span>
                  {text}
                </span>
                <span className="tl-dur num">{dur !== undefined ? fmtDurationUs(dur) : ''}</span>
                <span className="tl-wf">
                  <span className={`wf-bar child ${c.kind}`} style={bar(startUs, endUs)} />
                </span>
              </div>
            );
          })}
        </div>
      </div>
    </div>
  );
});
