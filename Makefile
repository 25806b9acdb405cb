# The usual targets. `make test` is what CI runs (through .ci/run).
GO ?= go
PKGS ?= ./...

.PHONY: build test test-short vet lint bench bench-relay bench-verify demo deploy-check fuzz clean

# The version `make build` stamps in: git describe, which works in a git
# worktree too, where go build records no VCS information. Empty (no git)
# leaves it to the build info (see cmd/cdcrelay/version.go).
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null)

# bin/cdcrelay, and beside it bin/cdcrelay-devbroker, the development broker
# for demos and tests (kafka.embedded runs it); the container image ships
# only cdcrelay.
build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o bin/cdcrelay ./cmd/cdcrelay
	$(GO) build -o bin/cdcrelay-devbroker ./cmd/cdcrelay-devbroker

# vet, then every test with the race detector, the integration tests
# against real PostgreSQL, MariaDB and Apache Kafka included. Set
# CDCRELAY_TEST_KAFKA=dev to run them on the embedded dev broker instead.
test: vet
	$(GO) test -race -count=1 -timeout 30m $(PKGS)

# The PostgreSQL source's tests against the other supported major versions
# (14, 16, 17; make test runs 15), from the server builds deploy/jvm/postgres
# names. 13 is refused by the preflight (TestServerVersions).
.PHONY: test-pg-versions
test-pg-versions:
	for v in 14 16 17; do CDCRELAY_TEST_PG=$$v $(GO) test -count=1 -timeout 20m ./sources/postgres || exit 1; done

# The relay's end-to-end smoke tests on the embedded dev broker (what
# `make demo` and quick runs use); the dev broker's own tests run in `test`.
.PHONY: test-dev-broker
test-dev-broker:
	CDCRELAY_TEST_KAFKA=dev $(GO) test -count=1 -timeout 15m -run '^(TestCrashPoints|TestFencing|TestBrokerKill|TestLoopExactlyOnce)$$' ./e2e ./relay

test-short: vet
	$(GO) test -short -count=1 $(PKGS)

vet:
	$(GO) vet $(PKGS)
	$(GO) vet -tags cdcrelay_testing ./cmd/cdcrelay
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed on:"; gofmt -l $$(git ls-files '*.go'); exit 1; }

lint: vet deploy-check

deploy-check:
	$(GO) test -count=1 ./internal/deploycheck/...

# End to end against throwaway PostgreSQL, MariaDB and Apache Kafka (-broker dev
# for the embedded dev broker): drain,
# snapshot, latency, memory and restart cost beside the source's and Kafka's
# limits measured in the same run, then the scale scenarios (bench-scale);
# prints a table, writes bench/results.json. See docs/benchmarks.md.
.PHONY: bench-quick
bench:
	$(GO) run ./bench
	$(GO) run ./bench -only many-tables,big-table

# The first part only, with about 100,000 changes per scenario, in under 3
# minutes.
bench-quick:
	$(GO) run ./bench -quick

# The scenarios that grow a size: 2,000 and 10,000 tables of 10 rows, and a
# table of 1M and 10M rows, on both sources (docs/benchmarks.md); about 30
# minutes on a 2-core machine. bench-scale-quick: 200 and 1,000 tables,
# 100,000 and 1M rows.
.PHONY: bench-scale bench-scale-quick
bench-scale:
	$(GO) run ./bench -only many-tables,big-table

bench-scale-quick:
	$(GO) run ./bench -quick -only many-tables,big-table

# cdcrelay, Debezium (Kafka Connect) and Flink CDC side by side on the same
# PostgreSQL, MariaDB and Apache Kafka: kill -9 mid-snapshot and restart
# (rows re-read, time to resume, state kept), Flink CDC's checkpoint size.
# The peers' jars come from Maven Central (deploy/jvm/debezium*,
# deploy/jvm/flinkcdc). Writes the "peers" key of bench/results.json; see
# docs/benchmarks.md. bench-peers-quick uses 200,000-row tables.
.PHONY: bench-peers bench-peers-quick
bench-peers:
	$(GO) run ./bench -peers

bench-peers-quick:
	$(GO) run ./bench -peers -quick

# Micro-benchmarks (encoding, the transactional loop against the dev broker).
bench-relay:
	$(GO) test -run '^$$' -bench . -benchmem ./format ./relay

# verify against a PostgreSQL table of 1M rows and its topic (docs/verify.md).
bench-verify:
	$(GO) test -run '^$$' -bench Verify1M -benchtime 2x ./verify

# Each fuzzer for 30 s; go test fuzzes one target at a time.
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzAppendString -fuzztime 30s ./change
	$(GO) test -run '^$$' -fuzz FuzzDecode -fuzztime 30s ./offsets
	$(GO) test -run '^$$' -fuzz FuzzDecode -fuzztime 30s ./sources/postgres
	$(GO) test -run '^$$' -fuzz FuzzBinaryTimestamp -fuzztime 30s ./sources/postgres
	$(GO) test -run '^$$' -fuzz FuzzRowsEvent -fuzztime 30s ./sources/mysql

demo:
	bash scripts/demo.sh

# The compose story without Docker: Apache Kafka, PostgreSQL, MariaDB, one
# relay per database configured by deploy/configs, and every job of
# deploy/flink/sql in a local Flink (deploy/jvm/flink), each sink compared
# with the databases after a scripted workload. Needs java 17 and mvn; the
# jars come from Maven Central once (docs/deploy.md).
.PHONY: flink-e2e
flink-e2e:
	CDCRELAY_FLINK_E2E=1 $(GO) test -count=1 -timeout 45m -run '^TestFlink' -v ./e2e/

# The same stack, narrated: the sink topics before and after changes, and a
# kill -9 of Flink that resumes (e2e/flink_demo_test.go).
.PHONY: flink-demo
flink-demo:
	CDCRELAY_FLINK_E2E=1 CDCRELAY_FLINK_DEMO=1 $(GO) test -count=1 -timeout 15m -run '^TestFlinkDemo$$' -v ./e2e/

clean:
	rm -rf bin

# The nemesis suite (e2e/chaos_*): faults injected under a versioned
# workload, judged by package checker. chaos-short is the short form (a few
# minutes per source); chaos is the full one (1M-row transaction, more
# rounds). The summary table goes to bin/chaos-report.md.
.PHONY: chaos chaos-short
chaos-short:
	@mkdir -p bin
	CDCRELAY_CHAOS=short CDCRELAY_CHAOS_REPORT=$(CURDIR)/bin/chaos-report.md $(GO) test -count=1 -timeout 60m -run '^TestChaos' -v ./e2e/

chaos:
	@mkdir -p bin
	CDCRELAY_CHAOS=full CDCRELAY_CHAOS_REPORT=$(CURDIR)/bin/chaos-report.md $(GO) test -count=1 -timeout 180m -run '^TestChaos' -v ./e2e/
