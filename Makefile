# DashStream build, test and tooling. `make demo` runs the main job,
# `make test` runs every test (under 15 minutes on 2 cores).
GO        ?= go
BIN       := bin/dashstream
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X main.version=$(VERSION)
FUZZTIME  ?= 10s
PKGS      := ./...

.PHONY: all build webui test test-ui test-ui-long test-long demo proto lint fuzz bench soak demo-soak faults clean

all: build

# The binary with the web UI embedded (-tags webui). A fresh clone without
# Node still compiles with plain `go build ./cmd/dashstream` (placeholder page).
build: webui
	$(GO) build -tags webui -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/dashstream

# The web UI (TypeScript, Vite) into webui/dist: `npm ci` when
# webui/node_modules is missing or older than package-lock.json, then
# `npm run build` (type check + bundle) when a source changed.
NPM       ?= npm
WEBUI_SRC := $(shell find webui/src webui/index.html webui/package.json webui/vite.config.ts webui/tsconfig.json -type f 2>/dev/null)

webui: webui/dist/index.html

webui/node_modules/.package-lock.json: webui/package-lock.json
	@command -v $(NPM) >/dev/null 2>&1 || { echo "error: npm not found. The web UI needs Node.js >= 20.19 with npm" \
		"(https://nodejs.org or apt-get install nodejs npm). Without it, 'go build ./cmd/dashstream'" \
		"builds the server with a placeholder page." >&2; exit 1; }
	cd webui && $(NPM) ci --no-audit --no-fund
	@touch $@

webui/dist/index.html: webui/node_modules/.package-lock.json $(WEBUI_SRC)
	@command -v $(NPM) >/dev/null 2>&1 || { echo "error: npm not found (see above)" >&2; exit 1; }
	cd webui && $(NPM) run build
	@touch $@

# Every test the project has: lint, unit and integration tests with the race
# detector, then a short fuzzing pass over each fuzz target.
test: lint
	$(GO) test -race -count=1 -timeout 12m $(PKGS)
	$(MAKE) fuzz FUZZTIME=4000x
	$(MAKE) test-ui

# Web UI tests: vitest (client logic on recorded frame sequences), then the
# browser tests (playwright-core driving Debian's /usr/bin/chromium against
# `dashstream demo` processes on free ports), under 5 minutes on 2 cores.
# The browser tests run a private copy of the binary ($(UI_TEST_BIN)), so
# a rebuild of $(BIN) meanwhile cannot change it under them. Screenshots and
# figures (apply lag, stepping latency) go to webui/test-results/.
UI_TEST_BIN := out/dashstream-webui-e2e

test-ui: build
	cd webui && $(NPM) test
	@mkdir -p out && cp $(BIN) $(UI_TEST_BIN).tmp && mv $(UI_TEST_BIN).tmp $(UI_TEST_BIN)
	cd webui && DASHSTREAM_BIN=$(CURDIR)/$(UI_TEST_BIN) $(NPM) run test:e2e

# Longer browser measurements (apply lag at 2 000 records/s over minutes).
test-ui-long: build
	@mkdir -p out && cp $(BIN) $(UI_TEST_BIN).tmp && mv $(UI_TEST_BIN).tmp $(UI_TEST_BIN)
	cd webui && DASHSTREAM_BIN=$(CURDIR)/$(UI_TEST_BIN) $(NPM) run test:e2e-long

# Long variants: 100 crash cycles, long fuzzing, soaks. With
# DASHSTREAM_LONG=1 the fault tests of cmd/dashstream/internal/bench run
# their long variants (100 SIGKILL cycles, bigger reconnect storms, the
# stalled-client latency rounds); then every fuzz target for 2 minutes and
# the 10-minute soak with its chart (soak-out/).
test-long: lint
	DASHSTREAM_LONG=1 $(GO) test -race -count=1 -timeout 60m $(PKGS)
	$(MAKE) fuzz FUZZTIME=2m
	$(MAKE) test-ui-long
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

# Demo soak: `dashstream demo` with its own caps for DEMO_SOAK (default
# 30m), producing fast enough to reach them; demo-soak-out/demo.csv,
# demo.json and demo.png (store file, broker log, RSS). Fails unless all
# three level off and SIGTERM exits 0 within 10 s.
DEMO_SOAK ?= 30m
demo-soak:
	OUT=$(CURDIR)/demo-soak-out scripts/demo-soak.sh $(DEMO_SOAK)

# Fault harness, long variants, without the race detector (the stalled-
# client p99 check applies): broker restart, store full, stalled clients,
# reconnect storm, 100 SIGKILLs mid-ingest. FAULT=<name> runs one.
FAULT ?=
faults:
	scripts/faults.sh $(FAULT)

clean:
	rm -rf bin out webui/dist webui/test-results soak-out demo-soak-out
