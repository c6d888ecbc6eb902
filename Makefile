# The README's test command: `make test` installs what the tests need
# (idempotently) and runs the whole suite.
GO ?= go
TEST_TIMEOUT ?= 30m
# kustomize's Go API (deploy tests) without its Go plugin loader, which would
# otherwise make test binaries link as PIE against gozstd's static libzstd.
TAGS ?= kustomize_disable_go_plugin_support

.PHONY: all build test test-deps vet bench fuzz clean

all: build

build:
	$(GO) build -o pharos ./cmd/pharos

test-deps:
	@scripts/install-test-deps.sh

vet:
	$(GO) vet -tags $(TAGS) ./...

test: test-deps vet
	$(GO) test -tags $(TAGS) -count=1 -timeout $(TEST_TIMEOUT) ./...

# Go benchmarks of the hot paths (side-by-side peer scripts live in bench/).
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

# A short fuzzing pass over every fuzz target.
fuzz:
	@scripts/fuzz.sh 10s

clean:
	rm -f pharos
