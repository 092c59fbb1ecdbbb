// Package ingest owns Kafka consumption: the franz-go source over all
// partitions of the topic, per-record validation and classification, the
// dead-letter queue, decode-error policies, watermarks and lag, and the
// embedded Kafka-protocol broker used by `dashstream demo`.
//
// Ingester (New, Run, Status) consumes every partition of KAFKA_TOPIC
// directly (no consumer-group assignment) from the store's next offsets,
// runs each record through the reference pipeline (missing payload, size
// check before any copy, old/new classification, wire.Extract, sequence
// validation, latency, DLQ) and writes each poll's records, skipped offset
// ranges and next offsets in one store.Append, so ingest is exactly-once
// into the store across crashes. Committed appends are announced through
// Notifier. The store is the only resume point; committing to
// KAFKA_GROUP_ID is an opt-in hint for lag tools.
//
// Kafka-side changes are reconciled with the store (DECISIONS D11): a new
// topic id or a log end behind the store starts a new source (D2), a log
// start beyond the store's next offset is recorded as an `evicted` range,
// and partitions added to the topic are picked up while running.
//
// Config and ConfigFromEnv read the reference environment variables
// (reference §9) and the DASHSTREAM_INGEST_* additions; ClientOpts applies
// the security settings to every Kafka client. Metrics registers the
// reference metric names on a caller-supplied registry.
//
// StartBroker runs the embedded kfake broker for `dashstream demo`.
package ingest
