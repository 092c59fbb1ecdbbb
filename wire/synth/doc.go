// Package synth generates realistic DashStream telemetry: the records a
// DashFlow-style graph executor would put on Kafka, for `dashstream
// produce`, the benchmark corpus (DECISIONS D9) and tests downstream.
//
// # Runs
//
// Each run is one graph execution on its own thread id (a UUIDv4, also
// the Kafka key), with one sequence counter shared by every emitter
// (starting at 1, contiguous in wire order). A run opens with GRAPH_START
// (graph_manifest, graph_schema_json in the UI format, schema_id,
// graph_name, graph_entry_point, node/edge counts, initial_state_json),
// then per node NODE_START, intra-node telemetry (TokenChunk streams for
// LLM nodes, ToolExecution lifecycles with JSON arguments/results, warning
// Errors on transient tool failures, NODE_PROGRESS / NODE_THINKING /
// NODE_SUBSTEP events, node Metrics), a StateDiff (JSON-patch operations,
// or full_state when the patch JSON is longer than len(new)*11/10, always
// with state_hash = SHA-256 of canonical JSON), an optional Checkpoint
// (uncompressed state) and NODE_END with duration_us; edges emit
// EDGE_TRAVERSAL or CONDITIONAL_BRANCH (node_id = source), parallel
// fan-outs PARALLEL_START/END. A run ends with quality Metrics (sometimes),
// a final StateDiff, GRAPH_END and sometimes an unsequenced ExecutionTrace
// — or, for about 8% of runs, with NODE_ERROR (attribute "error") and
// nothing after it. About a quarter of runs batch their events into
// EventBatches (sequence 0 envelope; any other message, or 100 ms of
// synthetic time, flushes the pending batch first).
//
// Shapes: react (agent ⇄ tools loop), pipeline (linear RAG pipeline with a
// revise loop), router (intent router with four branches and follow-up
// turns), large (26-node research workflow with two parallel fan-outs and
// a critique loop) and mixed (one of them per run, by seed). States are
// chat transcripts, tool results, documents with embeddings and drafts
// that grow over the run (trimmed like a context window past 96 KiB), so
// values range from under 100 B to tens of KB and both framings occur.
//
// # Determinism
//
// Everything — ids, text, timings — comes from PCG streams seeded by
// (Config.Seed, run index) and a synthetic clock, so the same Config gives
// byte-identical records. Concurrent runs are merged in synthetic time
// order. Config.Now switches headers to wall-clock time for live sending.
//
// # Corpus file format
//
// A corpus file is the 8-byte magic "DSCORP1\n" followed by records, each:
//
//	uvarint partition
//	uvarint key length,   key bytes
//	uvarint value length, value bytes (the framed Kafka value)
//
// with unsigned LEB128 varints (encoding/binary.PutUvarint). Keys and
// values are at most 64 MiB (MaxCorpusField); readers reject longer
// lengths, a wrong magic and files that end inside a record.
package synth
