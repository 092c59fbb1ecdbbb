// Decoded records: what the decode worker hands the store. Plain data (no
// classes except JsonFloat and typed values), so it crosses postMessage.
import type { JsonObject, JsonValue } from './json';
import type { PatchOp } from './patch';

/** A Kafka record position. Offsets are int64: kept as bigint. */
export interface Cursor {
  p: number;
  o: bigint;
}

export function cursorKey(c: Cursor): string {
  return `${c.p}:${c.o}`;
}

/** GraphSchema from the GRAPH_START attribute graph_schema_json (wire-protocol §1.4). */
export interface SchemaNode {
  name: string;
  description?: string;
  node_type?: string | { custom: string };
  input_fields?: string[];
  output_fields?: string[];
  attributes?: Record<string, unknown>;
}

export interface SchemaEdge {
  from: string;
  to: string;
  edge_type?: 'direct' | 'conditional' | 'parallel' | string;
  label?: string | null;
  conditional_targets?: string[] | null;
}

export interface GraphSchema {
  name?: string;
  version?: string;
  description?: string;
  nodes: SchemaNode[];
  edges: SchemaEdge[];
  entry_point?: string;
  state_type?: string;
}

interface RecBase {
  /** Kafka record position (null for records built in tests without one). */
  cursor: Cursor | null;
  thread: string;
  /** Per-thread sequence; 0n = unsequenced. */
  seq: bigint;
  /** Producer timestamp, µs since the epoch (0 = unknown). */
  tsUs: number;
  /** Header.message_id as hex. */
  msgId: string;
  schemaVersion: number;
  /** Approximate retained size in bytes (memory accounting). */
  size: number;
  /** True for the inner events of an EventBatch. */
  inBatch: boolean;
}

export interface EventRec extends RecBase {
  kind: 'event';
  /** EventType enum value. */
  type: number;
  node: string;
  attrs: JsonObject;
  durUs: number;
  /** GRAPH_START: parsed graph_schema_json. */
  schema?: GraphSchema;
  /** GRAPH_START: parsed initial_state_json. */
  initialState?: JsonValue;
  /** GRAPH_START: SHA-256 (hex) of the raw initial_state_json bytes. */
  initialRawHash?: string;
  /** Problems parsing GRAPH_START attributes. */
  attrError?: string;
}

export interface StateRec extends RecBase {
  kind: 'state';
  ops?: PatchOp[];
  full?: JsonValue;
  /** SHA-256 (hex) of the raw full_state bytes. */
  fullRawHash?: string;
  /** state_hash as hex ('' when absent). */
  hash: string;
  baseCheckpoint: string;
  /** Set when full_state or an op value could not be decoded. */
  error?: string;
}

export interface TokenRec extends RecBase {
  kind: 'token';
  requestId: string;
  text: string;
  chunkIndex: number;
  isFinal: boolean;
  finishReason: number;
  model: string;
  nTokens: number;
  stats?: { prompt: number; completion: number; total: number };
}

export interface ToolRec extends RecBase {
  kind: 'tool';
  callId: string;
  tool: string;
  stage: number;
  /** Raw JSON text of arguments / result (possibly truncated). */
  args: string;
  result: string;
  error: string;
  durUs: number;
  retries: number;
}

export interface CheckpointRec extends RecBase {
  kind: 'checkpoint';
  id: string;
  state?: JsonValue;
  /** checksum matched the (uncompressed) state bytes; null when no checksum. */
  checksumOk: boolean | null;
  error?: string;
}

export interface MetricsRec extends RecBase {
  kind: 'metrics';
  scope: string;
  scopeId: string;
  metrics: Record<string, { value: number | string | boolean; unit: string }>;
  tags: Record<string, string>;
}

export interface ErrorRec extends RecBase {
  kind: 'error';
  code: string;
  message: string;
  severity: number;
  context: Record<string, string>;
}

export interface TraceRec extends RecBase {
  kind: 'trace';
  executionId: string;
  totalDurationMs: number;
  totalTokens: number;
  completed: boolean;
  nodes: number;
  errors: { node: string; message: string }[];
}

export interface UnknownRec extends RecBase {
  kind: 'unknown';
}

export type Rec =
  | EventRec
  | StateRec
  | TokenRec
  | ToolRec
  | CheckpointRec
  | MetricsRec
  | ErrorRec
  | TraceRec
  | UnknownRec;

export interface RecordError {
  cursor: Cursor | null;
  code: string;
  message: string;
}

/** The result of decoding one WebSocket binary frame or backfill page. */
export interface DecodedFrame {
  records: Rec[];
  errors: RecordError[];
  /** Kafka records in the frame (an EventBatch counts once). */
  kafkaRecords: number;
  /** Highest offset per partition in the frame (decoded or not). */
  maxOffsets: [number, bigint][];
  /** Highest Header.schema_version seen in the frame. */
  maxSchemaVersion: number;
  bytes: number;
}

export const EXPECTED_SCHEMA_VERSION = 1;
