// The selected visit in full: timing, error, LLM streams (text, model,
// tokens), tool calls (arguments, result, retries) and notes.
import { useEffect, useRef } from 'react';
import { TokenChunk_FinishReason, ToolExecution_ExecutionStage } from '../gen/dashstream_pb';
import { parseJson, stringifyPretty } from '../lib/json';
import type { Child, Step } from '../store/derive';
import { fmtDurationUs, fmtInt, fmtTime, usToDate } from './format';
import { IconLlm, IconTool } from './icons';

function prettyJson(text: string): string {
  if (!text) return '';
  try {
    return stringifyPretty(parseJson(text.endsWith('…') ? text.slice(0, -1) : text));
  } catch {
    return text;
  }
}

const STAGE: Record<number, string> = {
  [ToolExecution_ExecutionStage.REQUESTED]: 'requested',
  [ToolExecution_ExecutionStage.STARTED]: 'running',
  [ToolExecution_ExecutionStage.COMPLETED]: 'completed',
  [ToolExecution_ExecutionStage.FAILED]: 'failed',
  [ToolExecution_ExecutionStage.RETRYING]: 'retrying',
};

function ChildCard({ c, selected }: { c: Child; selected: boolean }) {
  const ref = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (selected) ref.current?.scrollIntoView({ block: 'nearest' });
  }, [selected]);
  if (c.kind === 'llm') {
    return (
      <div ref={ref} className={`card llm${selected ? ' selected' : ''}`} data-testid="llm-call">
        <div className="card-head">
          <span>
            <IconLlm className="ic-llm" /> {c.model || 'LLM call'}
          </span>
          <span className="muted small">
            {fmtInt(c.chunks)} chunks · {fmtInt(c.tokens)} tokens · {fmtDurationUs(c.endUs - c.startUs)}
            {c.final ? ` · ${TokenChunk_FinishReason[c.finishReason]?.toLowerCase() ?? 'done'}` : ' · streaming…'}
            {c.stats ? ` · prompt ${fmtInt(c.stats.prompt)} / completion ${fmtInt(c.stats.completion)}` : ''}
          </span>
        </div>
        <pre className="llm-text">{c.text}</pre>
        <div className="muted small mono">
          {c.id} · seq {c.firstSeq.toString()}–{c.lastSeq.toString()}
        </div>
      </div>
    );
  }
  if (c.kind === 'tool') {
    return (
      <div ref={ref} className={`card tool${selected ? ' selected' : ''}${c.stage === ToolExecution_ExecutionStage.FAILED ? ' failed' : ''}`} data-testid="tool-call">
        <div className="card-head">
          <span>
            <IconTool className="ic-tool" /> {c.tool}
          </span>
          <span className="muted small">
            {STAGE[c.stage] ?? 'unknown'} · {fmtDurationUs(c.durUs || c.endUs - c.startUs)}
            {c.retries ? ` · ${c.retries} retr${c.retries === 1 ? 'y' : 'ies'}` : ''}
            {c.failures ? ` · ${c.failures} failure${c.failures === 1 ? '' : 's'}` : ''}
          </span>
        </div>
        {c.error && <div className="bad small">{c.error}</div>}
        {c.args && (
          <details open>
            <summary className="small">arguments</summary>
            <pre className="raw small">{prettyJson(c.args)}</pre>
          </details>
        )}
        {c.result && (
          <details>
            <summary className="small">result ({fmtInt(c.result.length)} bytes)</summary>
            <pre className="raw small">{prettyJson(c.result)}</pre>
          </details>
        )}
        <div className="muted small mono">
          {c.id} · seq {c.firstSeq.toString()}–{c.lastSeq.toString()}
        </div>
      </div>
    );
  }
  return (
    <div ref={ref} className={`note n-${c.level}${selected ? ' selected' : ''}`}>
      <span className="mono small muted">{c.seq.toString()}</span> <b>{c.label}</b> {c.text}
    </div>
  );
}

export function StepDetails({ step, selectedChild }: { step: Step | undefined; selectedChild: string | undefined }) {
  if (!step) return <div className="empty">No step selected.</div>;
  return (
    <div className="step-details" data-testid="step-details">
      <div className="kv">
        <span>Node</span>
        <b>{step.kind === 'parallel' ? `parallel: ${step.branches?.join(', ')}` : step.node}</b>
        <span>Visit</span>
        <span>#{step.visit}</span>
        <span>Status</span>
        <span className={`st-text st-${step.status}`}>{step.status}</span>
        <span>Sequence</span>
        <span className="mono">
          {step.startSeq.toString()}
          {step.endSeq !== undefined ? `–${step.endSeq.toString()}` : ' …'}
        </span>
        <span>Started</span>
        <span className="mono">{step.startUs ? fmtTime(usToDate(step.startUs)) : '—'}</span>
        <span>Duration</span>
        <span>{fmtDurationUs(step.durUs)}</span>
      </div>
      {step.error && (
        <div className="banner error" role="alert">
          {step.error}
        </div>
      )}
      {step.children.length === 0 ? (
        <div className="muted small">No LLM calls, tool calls or notes in this step.</div>
      ) : (
        step.children.map((c) => <ChildCard key={c.id} c={c} selected={c.id === selectedChild} />)
      )}
    </div>
  );
}
