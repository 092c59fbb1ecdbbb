# DashStream build, test and tooling. `make demo` runs the main job,
# `make test` runs every test (under 15 minutes on 2 cores).
GO        ?= go
BIN       := bin/dashstream
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X main.version=$(VERSION)
FUZZTIME  ?= 10s
PKGS      := ./...

.PHONY: all build test test-long demo proto lint fuzz bench soak faults clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/dashstream

# Every test the project has: lint, unit and integration tests with the race
# detector, then a short fuzzing pass over each fuzz target.
test: lint
	$(GO) test -race -count=1 -timeout 12m $(PKGS)
	$(MAKE) fuzz FUZZTIME=4000x

# Long variants: 100 crash cycles, long fuzzing, soaks. With
# DASHSTREAM_LONG=1 the fault tests of cmd/dashstream/internal/bench run
# their long variants (100 SIGKILL cycles, bigger reconnect storms, the
# stalled-client latency rounds); then every fuzz target for 2 minutes and
# the 10-minute soak with its chart (soak-out/).
test-long: lint
	DASHSTREAM_LONG=1 $(GO) test -race -count=1 -timeout 60m $(PKGS)
	$(MAKE) fuzz FUZZTIME=2m
	$(MAKE) soak SOAK=10m

# The main job: embedded broker, synthetic producer, server and UI in one
# process (flags: bin/dashstream demo -h).
demo: build
	$(BIN) demo $(DEMO_FLAGS)

# Regenerate wire/pb from dashstream.proto with Debian's protoc and the
# protoc-gen-go version pinned in go.mod.
proto:
	$(GO) build -o bin/protoc-gen-go google.golang.org/protobuf/cmd/protoc-gen-go
	protoc --plugin=protoc-gen-go=bin/protoc-gen-go --go_out=. --go_opt=paths=source_relative wire/pb/dashstream.proto

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
		if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

# Runs every fuzz target for FUZZTIME each; the corpus stays in testdata/.
# FUZZTIME is a duration (10s) or an execution count (4000x). make test uses
# a count: Go 1.26's fuzz coordinator can report a spurious "context deadline
# exceeded" when a duration runs out on a loaded machine (golang/go#75804).
fuzz:
	@for pkg in $$($(GO) list $(PKGS)); do \
		dir=$$($(GO) list -f '{{.Dir}}' $$pkg); \
		for t in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$dir/*_test.go 2>/dev/null | sed 's/func //'); do \
			echo "fuzz $$pkg $$t ($(FUZZTIME))"; \
			$(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) -parallel 2 $$pkg || exit 1; \
		done; \
	done

# `dashstream bench`: every figure against a baseline measured in the same
# run, as a table (BENCH_FLAGS="--quick" for the 3-minute CI size, "--json"
# for one JSON object on stdout); then the Go micro-benchmarks of wire and
# store. See docs/benchmarks.md.
BENCH_FLAGS ?=
bench:
	scripts/bench.sh $(BENCH_FLAGS)
	$(GO) test -run '^$$' -bench . -benchtime 1s ./wire/ ./store/...

# Soak: constant load with retention active for SOAK (default 10m), then
# soak-out/soak.csv, soak.json and soak.png (file size, RSS, goroutines,
# latency over time). Fails unless file size and RSS level off.
SOAK ?= 10m
soak:
	OUT=$(CURDIR)/soak-out scripts/soak.sh $(SOAK)

# Fault harness, long variants, without the race detector (the stalled-
# client p99 check applies): broker restart, store full, stalled clients,
# reconnect storm, 100 SIGKILLs mid-ingest. FAULT=<name> runs one.
FAULT ?=
faults:
	scripts/faults.sh $(FAULT)

clean:
	rm -rf bin out soak-out
