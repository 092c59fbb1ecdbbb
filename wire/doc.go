// Package wire owns the DashStream message format: the generated protobuf
// types (subpackage pb), the Kafka envelope codec (framing byte, zstd, size
// limits, error classes), extraction of the fields the store and hub index
// (message type, timestamp, thread/sequence pairs, run-summary facts),
// thread-id bounding and key sanitising, the resume namespace, and canonical
// JSON with the state hash.
package wire
