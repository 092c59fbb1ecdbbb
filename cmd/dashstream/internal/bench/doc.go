// Package bench is the machinery behind `dashstream bench`: the benchmark
// suite (store append, ingest, WebSocket fan-out, replay, idle connections,
// storage, end-to-end latency), each measured against a baseline in the
// same run; the WebSocket client process the fan-out benchmarks drive
// (`dashstream bench __client`); the soak driver (`dashstream bench
// --soak`); and the helpers the fault-harness tests share.
//
// Every ratio is ours over a baseline measured in the same process on the
// same machine, consuming the same input bytes through the same client
// harness; the absolute figures are reported beside it.
package bench
