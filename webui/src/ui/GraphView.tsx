// The graph canvas: nodes and edges from graph_schema_json (plus nodes and
// edges seen at runtime but missing from the schema), laid out with dagre,
// coloured by status at the cursor, with visit counts, durations and the
// edges actually taken.
import dagre from '@dagrejs/dagre';
import {
  Background,
  Controls,
  Handle,
  MarkerType,
  MiniMap,
  Position,
  ReactFlow,
  ReactFlowProvider,
  useReactFlow,
  type Edge,
  type Node,
  type NodeProps,
} from '@xyflow/react';
import { memo, useEffect, useMemo, useRef } from 'react';
import type { GraphSchema } from '../lib/types';
import { END, START, type NodeView } from '../store/derive';
import { fmtDurationUs } from './format';
import { IconEnd, IconStart, NodeTypeIcon } from './icons';

const NODE_W = 168;
const NODE_H = 46;

interface GNodeData extends Record<string, unknown> {
  /** Layout direction: top-to-bottom or left-to-right. */
  dir: 'TB' | 'LR';
  name: string;
  type: string;
  view?: NodeView;
  outOfSchema: boolean;
  terminal: boolean;
}

function nodeType(t: GraphSchema['nodes'][number]['node_type']): string {
  if (!t) return 'custom';
  if (typeof t === 'string') return t;
  return t.custom ? `custom:${t.custom}` : 'custom';
}

const GraphNode = memo(function GraphNode({ data }: NodeProps<Node<GNodeData>>) {
  const v = data.view;
  const status = v?.status ?? 'pending';
  const icon = data.terminal ? data.name === START ? <IconStart size={11} /> : <IconEnd size={11} /> : <NodeTypeIcon type={data.type} />;
  const title = [
    data.name,
    data.type,
    `status: ${status}`,
    v && v.visits ? `visits: ${v.visits}` : '',
    v && v.durUs ? `total time: ${fmtDurationUs(v.durUs)}` : '',
    data.outOfSchema ? 'not in the graph schema' : '',
    v?.error ? `error: ${v.error}` : '',
  ]
    .filter(Boolean)
    .join('\n');
  return (
    <div
      className={`gnode st-${status}${v?.current ? ' current' : ''}${data.terminal ? ' terminal' : ''}${data.outOfSchema ? ' oos' : ''}`}
      data-testid="graph-node"
      data-node={data.name}
      data-status={status}
      data-visits={v?.visits ?? 0}
      title={title}
    >
      <Handle type="target" position={data.dir === 'LR' ? Position.Left : Position.Top} className="ghandle" />
      <div className="gnode-head">
        <span className="gicon" aria-hidden>
          {icon}
        </span>
        <span className="gname">{data.terminal ? (data.name === START ? 'start' : 'end') : data.name}</span>
      </div>
      {!data.terminal && (
        <div className="gnode-meta">
          <span className="gtype">{data.type}</span>
          {v && v.visits > 0 && (
            <span className="gvisits" data-testid="graph-node-visits">
              ×{v.visits}
            </span>
          )}
          {v && v.durUs > 0 && <span className="gdur">{fmtDurationUs(v.durUs)}</span>}
        </div>
      )}
      <Handle type="source" position={data.dir === 'LR' ? Position.Right : Position.Bottom} className="ghandle" />
      <Handle type="source" position={data.dir === 'LR' ? Position.Bottom : Position.Right} id="r" className="ghandle" />
      <Handle type="target" position={data.dir === 'LR' ? Position.Bottom : Position.Right} id="rt" className="ghandle" />
    </div>
  );
});

const nodeTypes = { ds: GraphNode };

interface Structure {
  nodes: { id: string; type: string; outOfSchema: boolean; terminal: boolean }[];
  edges: { from: string; to: string; kind: string; label?: string }[];
}

function buildStructure(schema: GraphSchema | undefined, seen: Iterable<string>, taken: Iterable<[string, string]>): Structure {
  const nodes = new Map<string, Structure['nodes'][number]>();
  const edges = new Map<string, Structure['edges'][number]>();
  const addNode = (id: string, type: string, outOfSchema: boolean) => {
    if (!nodes.has(id)) nodes.set(id, { id, type, outOfSchema, terminal: id === START || id === END });
  };
  if (schema) {
    for (const n of schema.nodes) addNode(n.name, nodeType(n.node_type), false);
    for (const e of schema.edges) {
      if (!nodes.has(e.from)) addNode(e.from, 'custom', e.from !== START && e.from !== END);
      if (!nodes.has(e.to)) addNode(e.to, 'custom', e.to !== START && e.to !== END);
      edges.set(`${e.from}→${e.to}`, { from: e.from, to: e.to, kind: e.edge_type ?? 'direct', ...(e.label ? { label: e.label } : {}) });
    }
    if (schema.entry_point) {
      addNode(START, 'start', false);
      edges.set(`${START}→${schema.entry_point}`, { from: START, to: schema.entry_point, kind: 'direct' });
    }
  }
  for (const n of seen) addNode(n, 'custom', !!schema);
  for (const [from, to] of taken) {
    addNode(from, 'custom', !!schema && from !== START);
    addNode(to, 'custom', !!schema && to !== END);
    const k = `${from}→${to}`;
    if (!edges.has(k)) edges.set(k, { from, to, kind: schema ? 'observed' : 'direct' });
  }
  return { nodes: [...nodes.values()], edges: [...edges.values()] };
}

interface Layout {
  dir: 'TB' | 'LR';
  pos: Map<string, { x: number; y: number }>;
  w: number;
  h: number;
}

function layoutDir(s: Structure, dir: 'TB' | 'LR'): Layout {
  const g = new dagre.graphlib.Graph({ multigraph: false });
  g.setGraph({ rankdir: dir, nodesep: dir === 'TB' ? 24 : 16, ranksep: dir === 'TB' ? 34 : 44, marginx: 10, marginy: 10 });
  g.setDefaultEdgeLabel(() => ({}));
  for (const n of s.nodes) g.setNode(n.id, { width: n.terminal ? 84 : NODE_W, height: n.terminal ? 30 : NODE_H });
  for (const e of s.edges) if (e.from !== e.to) g.setEdge(e.from, e.to);
  dagre.layout(g);
  const pos = new Map<string, { x: number; y: number }>();
  let w = 0;
  let h = 0;
  for (const n of s.nodes) {
    const p = g.node(n.id) as { x: number; y: number; width: number; height: number } | undefined;
    if (!p) continue;
    pos.set(n.id, { x: p.x - p.width / 2, y: p.y - p.height / 2 });
    w = Math.max(w, p.x + p.width / 2);
    h = Math.max(h, p.y + p.height / 2);
  }
  return { dir, pos, w, h };
}

/** Top-to-bottom, unless left-to-right fits the panel clearly better (long pipelines). */
function layout(s: Structure, panelW: number, panelH: number): Layout {
  const tb = layoutDir(s, 'TB');
  const fit = (l: Layout) => Math.min(panelW / Math.max(1, l.w), panelH / Math.max(1, l.h));
  if (fit(tb) >= 0.75) return tb;
  const lr = layoutDir(s, 'LR');
  return fit(lr) > fit(tb) * 1.25 ? lr : tb;
}

export interface GraphViewProps {
  schema: GraphSchema | undefined;
  nodesSeen: Set<string>;
  edgesTakenAll: [string, string][];
  nodeViews: Map<string, NodeView>;
  edgeCounts: Map<string, number>;
  currentNode: string | undefined;
  onSelectNode: (name: string) => void;
  /** Keep the current node in view (following or stepping). */
  track: boolean;
}

export function GraphView(props: GraphViewProps) {
  return (
    <ReactFlowProvider>
      <GraphInner {...props} />
    </ReactFlowProvider>
  );
}

function GraphInner({ schema, nodesSeen, edgesTakenAll, nodeViews, edgeCounts, currentNode, onSelectNode, track }: GraphViewProps) {
  const seenKey = [...nodesSeen].sort().join(',');
  const takenKey = edgesTakenAll.map(([a, b]) => `${a}>${b}`).sort().join(',');
  const structure = useMemo(
    () => buildStructure(schema, nodesSeen, edgesTakenAll),
    // eslint-disable-next-line react-hooks/exhaustive-deps
    [schema, seenKey, takenKey],
  );
  const wrap = useRef<HTMLDivElement>(null);
  const size = useRef({ w: 0, h: 0 });
  const lay = useMemo(
    () => layout(structure, size.current.w || wrap.current?.clientWidth || 720, size.current.h || wrap.current?.clientHeight || 380),
    [structure],
  );
  const positions = lay.pos;
  // Node and edge objects are reused while their look is unchanged, so a
  // step re-renders (and re-measures) only what changed.
  const nodeCache = useRef(new Map<string, { key: string; node: Node<GNodeData> }>());
  const nodes: Node<GNodeData>[] = useMemo(() => {
    const cache = nodeCache.current;
    const out = structure.nodes.map((n) => {
      const view = nodeViews.get(n.id);
      const pos = positions.get(n.id) ?? { x: 0, y: 0 };
      const key = `${lay.dir}|${pos.x},${pos.y}|${n.type}|${view ? `${view.status}|${view.visits}|${view.durUs}|${view.current}|${view.error ?? ''}` : '-'}`;
      const hit = cache.get(n.id);
      if (hit && hit.key === key) return hit.node;
      const data: GNodeData = { dir: lay.dir, name: n.id, type: n.type, outOfSchema: n.outOfSchema, terminal: n.terminal };
      if (view) data.view = view;
      const node: Node<GNodeData> = {
        id: n.id,
        type: 'ds',
        position: pos,
        data,
        draggable: false,
        connectable: false,
        selectable: true,
        width: n.terminal ? 84 : NODE_W,
        height: n.terminal ? 30 : NODE_H,
      };
      cache.set(n.id, { key, node });
      return node;
    });
    return out;
  }, [structure, positions, nodeViews, lay.dir]);
  const edgeCache = useRef(new Map<string, { key: string; edge: Edge }>());
  // A condition name shared by several edges of one source (a router's
  // "route_by_intent" on every branch) says nothing and the labels would
  // overlap: only distinct ones are drawn.
  const sharedLabels = useMemo(() => {
    const seen = new Map<string, number>();
    for (const e of structure.edges) if (e.label) seen.set(`${e.from}|${e.label}`, (seen.get(`${e.from}|${e.label}`) ?? 0) + 1);
    return new Set([...seen].filter(([, n]) => n > 1).map(([k]) => k));
  }, [structure]);
  const edges: Edge[] = useMemo(
    () =>
      structure.edges.map((e) => {
        const id = `${e.from}→${e.to}`;
        const count = edgeCounts.get(id) ?? 0;
        const key = `${lay.dir}|${e.kind}|${e.label ?? ''}|${sharedLabels.has(`${e.from}|${e.label ?? ''}`)}|${count}|${positions.get(e.from)?.y ?? ''}|${positions.get(e.to)?.y ?? ''}`;
        const hit = edgeCache.current.get(id);
        if (hit && hit.key === key) return hit.edge;
        const taken = count > 0;
        const stroke = taken ? (e.kind === 'observed' ? '#f59e0b' : '#60a5fa') : e.kind === 'conditional' ? '#6b7280' : '#4b5563';
        const label = taken && count > 1 ? `×${count}` : e.label && !taken && !sharedLabels.has(`${e.from}|${e.label}`) ? e.label : undefined;
        const ps = positions.get(e.from);
        const pt = positions.get(e.to);
        // Loops (an edge back against the layout) arc on the side.
        const back = ps !== undefined && pt !== undefined && (lay.dir === 'LR' ? pt.x < ps.x : pt.y < ps.y);
        const edge: Edge = {
          id,
          source: e.from,
          target: e.to,
          ...(back ? { sourceHandle: 'r', targetHandle: 'rt' } : {}),
          type: 'default',
          ...(label ? { label } : {}),
          labelStyle: { fill: taken ? '#bfdbfe' : '#9ca3af', fontSize: 11 },
          labelBgStyle: { fill: '#111827' },
          className: taken ? 'edge-taken' : 'edge-idle',
          style: {
            stroke,
            strokeWidth: taken ? 2.5 : 1.3,
            ...(e.kind === 'conditional' && !taken ? { strokeDasharray: '5 4' } : {}),
          },
          markerEnd: { type: MarkerType.ArrowClosed, color: stroke, width: 16, height: 16 },
          data: { taken: count },
        };
        edgeCache.current.set(id, { key, edge });
        return edge;
      }),
    [structure, edgeCounts, positions, lay.dir, sharedLabels],
  );

  const rf = useReactFlow();
  const fitted = useRef<Structure | null>(null);
  // The canvas size, kept by a ResizeObserver (reading it would force a
  // layout). Until the user pans or zooms, a resize fits the graph again.
  const userMoved = useRef(false);
  const refit = useRef<() => void>(() => {});
  useEffect(() => {
    const el = wrap.current;
    if (!el) return;
    let t: ReturnType<typeof setTimeout> | undefined;
    const ro = new ResizeObserver((entries) => {
      const r = entries[0]?.contentRect;
      if (!r) return;
      const changed = Math.abs(r.width - size.current.w) > 1 || Math.abs(r.height - size.current.h) > 1;
      size.current = { w: r.width, h: r.height };
      if (changed && !userMoved.current) {
        if (t) clearTimeout(t);
        t = setTimeout(() => refit.current(), 60);
      }
    });
    ro.observe(el);
    return () => {
      ro.disconnect();
      if (t) clearTimeout(t);
    };
  }, []);
  // Fit when the structure changes, then keep the current node visible.
  useEffect(() => {
    // Whether the whole graph fits at a readable zoom (then we fit, never pan).
    const fitsWhole = (w: number, h: number) => {
      let x1 = Infinity;
      let y1 = Infinity;
      let x2 = -Infinity;
      let y2 = -Infinity;
      for (const p of positions.values()) {
        x1 = Math.min(x1, p.x);
        y1 = Math.min(y1, p.y);
        x2 = Math.max(x2, p.x + NODE_W);
        y2 = Math.max(y2, p.y + NODE_H);
      }
      if (!Number.isFinite(x1)) return true;
      return Math.min(w / ((x2 - x1) * 1.16), h / ((y2 - y1) * 1.16)) >= 0.7;
    };
    const ensureVisible = () => {
      if (!track || !currentNode) return;
      const p = positions.get(currentNode);
      const { w, h } = size.current;
      if (!p || w === 0) return;
      const { x, y, zoom } = rf.getViewport();
      const sx = p.x * zoom + x;
      const sy = p.y * zoom + y;
      if (sx < 0 || sy < 0 || sx + NODE_W * zoom > w || sy + NODE_H * zoom > h) {
        if (fitsWhole(w, h)) void rf.fitView({ padding: 0.08, maxZoom: 1, minZoom: 0.7, duration: 150 });
        else {
          // Centre on the node, but never show empty space beyond the graph's edges.
          const z = Math.max(zoom, 0.7);
          const clamp = (t: number, lo: number, hi: number) => (lo > hi ? (lo + hi) / 2 : Math.min(hi, Math.max(lo, t)));
          const tx = clamp(w / 2 - (p.x + NODE_W / 2) * z, w - (lay.w + 10) * z, 10);
          const ty = clamp(h / 2 - (p.y + NODE_H / 2) * z, h - (lay.h + 10) * z, 10);
          void rf.setViewport({ x: tx, y: ty, zoom: z }, { duration: 150 });
        }
      }
    };
    const fit = () => void Promise.resolve(rf.fitView({ padding: 0.08, maxZoom: 1, minZoom: 0.7, duration: 0 })).then(() => ensureVisible());
    refit.current = fit;
    if (fitted.current !== structure) {
      fitted.current = structure;
      const t = setTimeout(fit, 30);
      return () => clearTimeout(t);
    }
    ensureVisible();
    return undefined;
  }, [rf, structure, positions, currentNode, track, lay]);

  return (
    <div className="graph" ref={wrap} data-testid="graph">
      <ReactFlow
        nodes={nodes}
        edges={edges}
        nodeTypes={nodeTypes}
        fitView
        fitViewOptions={{ padding: 0.08, maxZoom: 1, minZoom: 0.7 }}
        minZoom={0.1}
        maxZoom={2}
        nodesDraggable={false}
        nodesConnectable={false}
        elementsSelectable
        onNodeClick={(_, n) => onSelectNode(n.id)}
        onMoveStart={(ev) => {
          if (ev) userMoved.current = true; // a user gesture, not our own fit/centre
        }}
        proOptions={{ hideAttribution: true }}
        colorMode="dark"
      >
        <Background gap={24} size={1} color="#1f2937" />
        <Controls showInteractive={false} position="bottom-right" />
        <MiniMap
          pannable
          zoomable
          position="top-right"
          style={{ width: 120, height: 80 }}
          nodeColor={(n) => STATUS_COLORS[((n.data as GNodeData).view?.status ?? 'pending') as keyof typeof STATUS_COLORS]}
          maskColor="rgba(3,7,18,0.6)"
        />
      </ReactFlow>
      {!schema && (
        <div className="graph-note muted small">No graph schema in this run's history yet: showing the nodes seen so far.</div>
      )}
    </div>
  );
}

const STATUS_COLORS = { pending: '#374151', active: '#3b82f6', completed: '#22c55e', error: '#ef4444' } as const;
