# The README's test command: `make test` installs what the tests need
# (idempotently), vets, runs the whole suite, then gives every fuzz target
# a short budget (FUZZTIME each; 35 targets × (3 s + ~3 s start-up) ≈ 4 min with a warm
# build cache).
GO ?= go
TEST_TIMEOUT ?= 30m
# kustomize's Go API (deploy tests) without its Go plugin loader, which would
# otherwise make test binaries link as PIE against gozstd's static libzstd.
TAGS ?= kustomize_disable_go_plugin_support
FUZZTIME ?= 3s

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
	@GO=$(GO) TAGS=$(TAGS) scripts/fuzz.sh $(FUZZTIME)

# Go benchmarks of the hot paths (side-by-side peer scripts live in bench/).
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

# A longer fuzzing pass over every fuzz target.
fuzz:
	@GO=$(GO) TAGS=$(TAGS) scripts/fuzz.sh 30s

clean:
	rm -f pharos
