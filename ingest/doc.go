// Package ingest owns Kafka consumption: the franz-go source over all
// partitions of the topic, per-record validation and classification, the
// dead-letter queue, decode-error policies, watermarks and lag, and the
// embedded Kafka-protocol broker used by `dashstream demo`.
package ingest
