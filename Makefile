# The README's test command: `make test` installs what the tests need
# (idempotently) and runs the whole suite.
GO ?= go
TEST_TIMEOUT ?= 30m

.PHONY: all build test test-deps vet bench fuzz clean

all: build

build:
	$(GO) build -o pharos ./cmd/pharos

test-deps:
	@scripts/install-test-deps.sh

vet:
	$(GO) vet ./...

test: test-deps vet
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...

# Go benchmarks of the hot paths (side-by-side peer scripts live in bench/).
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

# A short fuzzing pass over every fuzz target.
fuzz:
	@scripts/fuzz.sh 10s

clean:
	rm -f pharos
