// Derivation of a run's view from its records in sequence order: the state
// chain (one version per StateDiff/Checkpoint), node visits ("steps") with
// their LLM streams, tool calls and notes nested under them, and the edges
// actually taken. Incremental: records are fed in order with feed(); a
// record inserted before the last fed one needs a fresh Deriver.
import { EventType, ToolExecution_ExecutionStage as Stage } from '../gen/dashstream_pb';
import type { JsonValue } from '../lib/json';
import { applyPatch, type PatchOp } from '../lib/patch';
import type { EventRec, GraphSchema, Rec, StateRec, TraceRec } from '../lib/types';

export type NodeStatus = 'pending' | 'active' | 'completed' | 'error';
export type RunStatus = 'running' | 'completed' | 'error' | 'unknown';

/** Hash verification of one state version. */
export type VerifyState =
  | 'none' // no state_hash to check
  | 'pending'
  | 'deferred' // skipped under load; verified when looked at
  | 'ok'
  | 'mismatch'
  | 'unknown' // state unknown (no baseline), cannot verify
  | 'error'; // the diff could not be applied

export interface StateVersion {
  seq: bigint;
  index: number;
  /** undefined: unknown (no baseline yet, or a failed patch). */
  state: JsonValue | undefined;
  source: 'initial' | 'full' | 'patch' | 'checkpoint' | 'empty';
  /** Expected state hash (hex), '' when none. */
  expected: string;
  /** SHA-256 of the raw full-state bytes, when the version came as bytes. */
  rawHash?: string;
  ops?: PatchOp[];
  error?: string;
  verify: VerifyState;
  computed?: string;
}

export interface LlmCall {
  kind: 'llm';
  id: string;
  model: string;
  text: string;
  chunks: number;
  tokens: number;
  firstSeq: bigint;
  lastSeq: bigint;
  startUs: number;
  endUs: number;
  final: boolean;
  finishReason: number;
  stats?: { prompt: number; completion: number; total: number };
}

export interface ToolCall {
  kind: 'tool';
  id: string;
  tool: string;
  stage: number;
  args: string;
  result: string;
  error: string;
  durUs: number;
  retries: number;
  failures: number;
  firstSeq: bigint;
  lastSeq: bigint;
  startUs: number;
  endUs: number;
}

export interface Note {
  kind: 'note';
  id: string;
  seq: bigint;
  tsUs: number;
  level: 'info' | 'warning' | 'error';
  label: string;
  text: string;
}

export type Child = LlmCall | ToolCall | Note;

export interface Step {
  index: number;
  kind: 'start' | 'node' | 'parallel' | 'end';
  /** Node name; "a,b,c" for a parallel block; __start__ / __end__. */
  node: string;
  branches?: string[];
  /** 1-based visit number of this node within the run. */
  visit: number;
  startSeq: bigint;
  endSeq?: bigint;
  lastSeq: bigint;
  startUs: number;
  endUs?: number;
  durUs?: number;
  status: 'active' | 'completed' | 'error';
  error?: string;
  children: Child[];
  /** Sequence of the StateDiff emitted in this step. */
  stateSeq?: bigint;
  /** True for the placeholder step of a run whose beginning is not loaded. */
  partial?: boolean;
}

export interface EdgeHit {
  from: string;
  to: string;
  seq: bigint;
  conditional: boolean;
}

export const START = '__start__';
export const END = '__end__';

const MAX_LLM_TEXT = 64 * 1024;

export class Deriver {
  graphName = '';
  schema: GraphSchema | undefined;
  schemaId = '';
  hasStart = false;
  startUs = 0;
  endUs: number | undefined;
  status: RunStatus = 'unknown';
  lastError: string | undefined;
  readonly states: StateVersion[] = [];
  readonly steps: Step[] = [];
  readonly edges: EdgeHit[] = [];
  readonly nodesSeen = new Set<string>();
  readonly quality: Record<string, number | string | boolean> = {};
  tokens = 0;
  /** Records fed so far. */
  fed = 0;
  /** Timestamp of the previously fed record (an LLM call starts after it). */
  private prevUs = 0;
  lastSeq = 0n;
  lastUs = 0;

  private state: JsonValue | undefined;
  private openNode = new Map<string, Step>();
  private openParallel: Step | undefined;
  private current: Step | undefined;
  private pendingEdges: { from: string; conditional: boolean }[] = [];
  private afterParallel: string[] | undefined;
  private readonly visits = new Map<string, number>();
  private readonly llm = new Map<string, LlmCall>();
  private readonly tools = new Map<string, ToolCall>();
  private prevForToken = 0;

  /** Feeds the next record in sequence order (seq > 0). */
  feed(r: Rec): void {
    this.fed++;
    const prevUs = this.prevUs;
    this.prevUs = r.tsUs;
    this.prevForToken = prevUs;
    if (r.seq > this.lastSeq) this.lastSeq = r.seq;
    if (r.tsUs > this.lastUs) this.lastUs = r.tsUs;
    if (this.steps.length === 0 && !(r.kind === 'event' && r.type === EventType.GRAPH_START)) this.partialStart(r);
    switch (r.kind) {
      case 'event':
        this.event(r);
        break;
      case 'state':
        this.stateDiff(r);
        break;
      case 'checkpoint':
        if (r.state !== undefined) {
          this.pushState(r.seq, r.state, 'checkpoint', '', r.checksumOk === null ? 'none' : r.checksumOk ? 'ok' : 'mismatch');
        } else {
          this.pushState(r.seq, this.state, 'checkpoint', '', 'error', r.error ?? 'checkpoint without state');
        }
        break;
      case 'token':
        this.token(r);
        break;
      case 'tool':
        this.tool(r);
        break;
      case 'metrics': {
        if (r.scope === 'quality') {
          for (const [k, v] of Object.entries(r.metrics)) this.quality[k] = v.value;
        }
        const text = Object.entries(r.metrics)
          .map(([k, v]) => `${k} ${typeof v.value === 'number' ? round(v.value) : String(v.value)}${v.unit && v.unit !== 'bool' ? ' ' + v.unit : ''}`)
          .join(', ');
        this.note(r, 'info', r.scope === 'quality' ? 'quality' : 'metric', text);
        break;
      }
      case 'error':
        this.note(r, r.severity >= 4 ? 'error' : r.severity === 3 ? 'warning' : 'info', r.code || 'error', r.message);
        break;
      default:
        break;
    }
    const host = this.current ?? this.steps[this.steps.length - 1];
    if (host && r.seq > host.lastSeq) host.lastSeq = r.seq;
  }

  /** The trace summary (an unsequenced message). */
  trace: TraceRec | undefined;

  private partialStart(r: Rec): void {
    this.steps.push({
      index: 0,
      kind: 'start',
      node: START,
      visit: 1,
      startSeq: r.seq,
      lastSeq: r.seq,
      startUs: r.tsUs,
      status: 'completed',
      children: [],
      partial: true,
    });
    this.startUs = r.tsUs;
    if (this.status === 'unknown') this.status = 'running';
  }

  private newStep(s: Omit<Step, 'index' | 'children' | 'lastSeq'>): Step {
    const step: Step = { ...s, index: this.steps.length, children: [], lastSeq: s.startSeq };
    this.steps.push(step);
    return step;
  }

  private resolveEdges(to: string, seq: bigint): void {
    for (const e of this.pendingEdges) this.edges.push({ from: e.from, to, seq, conditional: e.conditional });
    if (this.pendingEdges.length === 0 && this.afterParallel) {
      for (const b of this.afterParallel) this.edges.push({ from: b, to, seq, conditional: false });
    }
    this.pendingEdges = [];
    this.afterParallel = undefined;
  }

  private event(r: EventRec): void {
    switch (r.type) {
      case EventType.GRAPH_START: {
        this.hasStart = true;
        this.status = 'running';
        this.startUs = r.tsUs;
        this.graphName = typeof r.attrs.graph_name === 'string' ? r.attrs.graph_name : (r.schema?.name ?? '');
        this.schemaId = typeof r.attrs.schema_id === 'string' ? r.attrs.schema_id : '';
        if (r.schema) this.schema = r.schema;
        const step = this.newStep({
          kind: 'start',
          node: START,
          visit: 1,
          startSeq: r.seq,
          endSeq: r.seq,
          startUs: r.tsUs,
          endUs: r.tsUs,
          status: 'completed',
        });
        this.current = undefined;
        this.pushState(r.seq, r.initialState ?? {}, 'initial', '', 'none', r.attrError);
        step.stateSeq = r.seq;
        if (r.attrError) this.noteOn(step, r, 'warning', 'graph_start', r.attrError);
        const entry = (typeof r.attrs.graph_entry_point === 'string' && r.attrs.graph_entry_point) || r.schema?.entry_point;
        if (entry) this.pendingEdges = [{ from: START, conditional: false }];
        break;
      }
      case EventType.NODE_START: {
        this.resolveEdges(r.node, r.seq);
        const visit = (this.visits.get(r.node) ?? 0) + 1;
        this.visits.set(r.node, visit);
        this.nodesSeen.add(r.node);
        const step = this.newStep({ kind: 'node', node: r.node, visit, startSeq: r.seq, startUs: r.tsUs, status: 'active' });
        this.openNode.set(r.node, step);
        this.current = step;
        break;
      }
      case EventType.NODE_END:
      case EventType.NODE_ERROR: {
        let step = this.openNode.get(r.node);
        if (!step) {
          // The start of this visit is not loaded: a visit known from its end.
          const visit = (this.visits.get(r.node) ?? 0) + 1;
          this.visits.set(r.node, visit);
          this.nodesSeen.add(r.node);
          step = this.newStep({ kind: 'node', node: r.node, visit, startSeq: r.seq, startUs: r.tsUs, status: 'active' });
        }
        this.openNode.delete(r.node);
        step.endSeq = r.seq;
        step.endUs = r.tsUs;
        step.durUs = r.durUs > 0 ? r.durUs : Math.max(0, r.tsUs - step.startUs);
        if (r.type === EventType.NODE_ERROR) {
          step.status = 'error';
          const err = typeof r.attrs.error === 'string' ? r.attrs.error : 'node error';
          step.error = err;
          this.lastError = err;
          this.status = 'error';
        } else step.status = 'completed';
        if (this.current === step) this.current = this.openParallel;
        break;
      }
      case EventType.EDGE_TRAVERSAL:
      case EventType.CONDITIONAL_BRANCH:
        this.pendingEdges.push({ from: r.node, conditional: r.type === EventType.CONDITIONAL_BRANCH });
        break;
      case EventType.PARALLEL_START: {
        const branches = r.node.split(',').filter(Boolean);
        for (const b of branches) {
          this.resolveEdgesTo(b, r.seq);
          this.visits.set(b, (this.visits.get(b) ?? 0) + 1);
          this.nodesSeen.add(b);
        }
        this.pendingEdges = [];
        this.afterParallel = undefined;
        const step = this.newStep({
          kind: 'parallel',
          node: r.node,
          branches,
          visit: this.visits.get(branches[0] ?? '') ?? 1,
          startSeq: r.seq,
          startUs: r.tsUs,
          status: 'active',
        });
        this.openParallel = step;
        this.current = step;
        break;
      }
      case EventType.PARALLEL_END: {
        const step = this.openParallel;
        if (step) {
          step.endSeq = r.seq;
          step.endUs = r.tsUs;
          step.durUs = r.durUs > 0 ? r.durUs : Math.max(0, r.tsUs - step.startUs);
          step.status = 'completed';
          this.afterParallel = step.branches;
        }
        this.openParallel = undefined;
        this.current = undefined;
        break;
      }
      case EventType.GRAPH_END:
      case EventType.GRAPH_ERROR: {
        this.resolveEdges(END, r.seq);
        const err = r.type === EventType.GRAPH_ERROR;
        const errText = err ? (typeof r.attrs.error === 'string' ? r.attrs.error : 'graph error') : undefined;
        const step = this.newStep({
          kind: 'end',
          node: END,
          visit: 1,
          startSeq: r.seq,
          endSeq: r.seq,
          startUs: r.tsUs,
          endUs: r.tsUs,
          durUs: r.durUs,
          status: err ? 'error' : 'completed',
          ...(errText ? { error: errText } : {}),
        });
        // The final StateDiff comes just before GRAPH_END.
        const prevState = this.states[this.states.length - 1];
        const prevStep = this.steps[step.index - 1];
        if (prevState && prevStep && prevStep.kind !== 'start' && prevState.seq > (prevStep.endSeq ?? prevStep.lastSeq)) {
          step.stateSeq = prevState.seq;
        }
        this.status = err ? 'error' : 'completed';
        if (errText) this.lastError = errText;
        this.endUs = r.tsUs;
        this.current = undefined;
        break;
      }
      case EventType.NODE_PROGRESS: {
        const pct = typeof r.attrs.percent === 'number' ? ` (${Math.round(r.attrs.percent * 100)}%)` : '';
        this.note(r, 'info', 'progress', `${String(r.attrs.message ?? '')}${pct}`);
        break;
      }
      case EventType.NODE_THINKING:
        this.note(r, 'info', 'thinking', String(r.attrs.thought ?? ''));
        break;
      case EventType.NODE_SUBSTEP:
        this.note(r, 'info', 'substep', `${String(r.attrs.substep_name ?? '')} ${String(r.attrs.status ?? '')}`.trim());
        break;
      case EventType.NODE_WARNING:
        this.note(r, 'warning', 'warning', String(r.attrs.message ?? r.attrs.warning ?? ''));
        break;
      case EventType.HUMAN_INTERRUPT:
        this.note(r, 'warning', 'interrupt', String(r.attrs.message ?? 'waiting for a human'));
        break;
      case EventType.HUMAN_RESUME:
        this.note(r, 'info', 'resume', String(r.attrs.message ?? 'resumed'));
        break;
      default:
        this.note(r, 'info', eventName(r.type), r.node);
        break;
    }
  }

  private resolveEdgesTo(to: string, seq: bigint): void {
    for (const e of this.pendingEdges) this.edges.push({ from: e.from, to, seq, conditional: e.conditional });
  }

  private host(r: Rec): Step {
    const h = this.current ?? this.steps[this.steps.length - 1];
    if (h) return h;
    this.partialStart(r);
    return this.steps[0] as Step;
  }

  private noteOn(step: Step, r: Rec, level: Note['level'], label: string, text: string): void {
    step.children.push({ kind: 'note', id: `n${r.seq}`, seq: r.seq, tsUs: r.tsUs, level, label, text });
  }

  private note(r: Rec, level: Note['level'], label: string, text: string): void {
    this.noteOn(this.host(r), r, level, label, text);
  }

  private token(r: Extract<Rec, { kind: 'token' }>): void {
    const key = r.requestId || `seq${r.seq}`;
    let c = this.llm.get(key);
    if (!c) {
      c = {
        kind: 'llm',
        id: key,
        model: r.model,
        text: '',
        chunks: 0,
        tokens: 0,
        firstSeq: r.seq,
        lastSeq: r.seq,
        // The request went out after the previous record: time to first token counts.
        startUs: this.prevForToken > 0 && this.prevForToken <= r.tsUs ? this.prevForToken : r.tsUs,
        endUs: r.tsUs,
        final: false,
        finishReason: 0,
      };
      this.llm.set(key, c);
      this.host(r).children.push(c);
    }
    c.chunks++;
    c.tokens += r.nTokens;
    this.tokens += r.nTokens;
    if (c.text.length < MAX_LLM_TEXT) c.text += r.text;
    c.lastSeq = r.seq;
    c.endUs = r.tsUs;
    if (r.model) c.model = r.model;
    if (r.isFinal) {
      c.final = true;
      c.finishReason = r.finishReason;
      if (r.stats) c.stats = r.stats;
    }
  }

  private tool(r: Extract<Rec, { kind: 'tool' }>): void {
    const key = r.callId || `seq${r.seq}`;
    let c = this.tools.get(key);
    if (!c) {
      c = {
        kind: 'tool',
        id: key,
        tool: r.tool,
        stage: r.stage,
        args: r.args,
        result: '',
        error: '',
        durUs: 0,
        retries: 0,
        failures: 0,
        firstSeq: r.seq,
        lastSeq: r.seq,
        startUs: r.tsUs,
        endUs: r.tsUs,
      };
      this.tools.set(key, c);
      this.host(r).children.push(c);
    }
    c.stage = r.stage;
    c.lastSeq = r.seq;
    c.endUs = r.tsUs;
    if (r.args && !c.args) c.args = r.args;
    if (r.result) c.result = r.result;
    if (r.error) c.error = r.error;
    if (r.stage === Stage.FAILED) c.failures++;
    if (r.durUs > 0) c.durUs = r.durUs;
    if (r.retries > c.retries) c.retries = r.retries;
  }

  private pushState(
    seq: bigint,
    state: JsonValue | undefined,
    source: StateVersion['source'],
    expected: string,
    verify: VerifyState,
    error?: string,
    extra?: Partial<StateVersion>,
  ): StateVersion {
    const v: StateVersion = { seq, index: this.states.length, state, source, expected, verify, ...extra };
    if (error) v.error = error;
    this.states.push(v);
    this.state = state;
    return v;
  }

  private stateDiff(r: StateRec): void {
    const host = this.current ?? this.steps[this.steps.length - 1];
    if (host) host.stateSeq = r.seq;
    const pending: VerifyState = r.hash ? 'pending' : 'none';
    if (r.error) {
      this.pushState(r.seq, undefined, r.full !== undefined ? 'full' : 'patch', r.hash, 'error', r.error);
      return;
    }
    if (r.full !== undefined) {
      const extra: Partial<StateVersion> = {};
      if (r.fullRawHash) extra.rawHash = r.fullRawHash;
      this.pushState(r.seq, r.full, 'full', r.hash, pending, undefined, extra);
      return;
    }
    if (r.ops && r.ops.length > 0) {
      if (this.state === undefined) {
        this.pushState(r.seq, undefined, 'patch', r.hash, 'unknown', undefined, { ops: r.ops });
        return;
      }
      try {
        const next = applyPatch(this.state, r.ops);
        this.pushState(r.seq, next, 'patch', r.hash, pending, undefined, { ops: r.ops });
      } catch (e) {
        this.pushState(r.seq, undefined, 'patch', r.hash, 'error', (e as Error).message, { ops: r.ops });
      }
      return;
    }
    // An empty diff: the state did not change.
    this.pushState(r.seq, this.state, 'empty', r.hash, this.state === undefined ? 'unknown' : pending);
  }
}

function round(v: number): string {
  return Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 1 ? v.toFixed(2) : v.toPrecision(3);
}

export function eventName(t: number): string {
  const n = EventType[t];
  return n ? n.toLowerCase() : `event_${t}`;
}

/** The state version in force at seq (the last one with version.seq ≤ seq). */
export function versionAt(states: readonly StateVersion[], seq: bigint): StateVersion | undefined {
  let lo = 0;
  let hi = states.length - 1;
  let best: StateVersion | undefined;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const v = states[mid] as StateVersion;
    if (v.seq <= seq) {
      best = v;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  return best;
}

/** The sequence a step stands for when selected: the state after it. */
export function stepCursor(s: Step): bigint {
  return s.endSeq ?? s.lastSeq;
}

export interface NodeView {
  status: NodeStatus;
  visits: number;
  durUs: number;
  current: boolean;
  error?: string;
}

/** Status, visit count and total duration of every node at cursor seq. */
export function nodesAt(steps: readonly Step[], cursor: bigint, currentStep?: Step): Map<string, NodeView> {
  const out = new Map<string, NodeView>();
  const get = (n: string) => {
    let v = out.get(n);
    if (!v) {
      v = { status: 'pending', visits: 0, durUs: 0, current: false };
      out.set(n, v);
    }
    return v;
  };
  for (const s of steps) {
    if (s.startSeq > cursor) break;
    const ended = s.endSeq !== undefined && s.endSeq <= cursor;
    const names = s.kind === 'parallel' ? (s.branches ?? []) : [s.node];
    for (const n of names) {
      const v = get(n);
      v.visits++;
      if (ended) {
        v.status = s.status === 'error' ? 'error' : 'completed';
        v.durUs += s.durUs ?? 0;
        if (s.error) v.error = s.error;
        else delete v.error;
      } else v.status = 'active';
      if (currentStep && s === currentStep) v.current = true;
    }
  }
  return out;
}

/** Counts of edges taken up to cursor, keyed "from→to". */
export function edgesAt(edges: readonly EdgeHit[], cursor: bigint): Map<string, number> {
  const out = new Map<string, number>();
  for (const e of edges) {
    if (e.seq > cursor) continue;
    const k = `${e.from}→${e.to}`;
    out.set(k, (out.get(k) ?? 0) + 1);
  }
  return out;
}
