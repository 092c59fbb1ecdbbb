// Package pb holds the Go types generated from dashstream.proto, the
// DashStream telemetry schema (protobuf package dashstream.v1). Regenerate
// with `make proto`; TestGeneratedCodeIsFresh fails when they are stale.
package pb

//go:generate sh -c "cd ../.. && make proto"
