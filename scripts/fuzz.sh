#!/usr/bin/env bash
# Runs every Go fuzz target of the module, one at a time, for a short
# budget each: scripts/fuzz.sh [budget] (default 3s; FUZZTIME overrides).
#
# Targets are found, not listed: every `func FuzzX(` at the start of a line
# in a *_test.go file. Seed corpora are committed in each package's
# testdata/fuzz/FuzzX/; what the fuzzer finds interesting goes to
# $(go env GOCACHE)/fuzz, which CI caches, so each run starts from the
# corpus of the runs before.
#
# A failing input is written by Go to <package>/testdata/fuzz/FuzzX/<hash>;
# the script goes on with the other targets, then lists every failure with
# its input file (to commit: it becomes a regression test) and exits 1.
#
# Cost: about targets × (budget + ~1 s of baseline and start-up), plus the
# instrumented builds (one per package, cached in GOCACHE).
set -euo pipefail

budget=${1:-${FUZZTIME:-3s}}
tags=${TAGS:-kustomize_disable_go_plugin_support}
go=${GO:-go}
cd "$(dirname "$0")/.."

mapfile -t targets < <(
	grep -rE --include='*_test.go' --exclude-dir=node_modules --exclude-dir=.git -o '^func Fuzz[A-Za-z0-9_]*\(' . |
		sed -E 's#^\./(.*)/[^/]*_test\.go:func (Fuzz[A-Za-z0-9_]*)\($#\1 \2#' |
		sort -u
)
if [ ${#targets[@]} -eq 0 ]; then
	echo "fuzz: no fuzz targets found" >&2
	exit 1
fi

# deadline_race LOG TARGET: did the run fail only with the fuzz
# coordinator's own deadline, and write no failing input?
deadline_race() {
	! grep -q 'Failing input written' "$1" &&
		grep -A1 -E "^--- FAIL: $2 " "$1" | tail -n1 | grep -qE '^[[:space:]]*context deadline exceeded$'
}

report_failure() {
	echo "FAIL ./$dir $target ($((SECONDS - t0))s)"
	sed 's/^/    /' "$log"
	input=$(grep -oE 'testdata/fuzz/[^ ]+' "$log" | head -n1 || true)
	if [ -n "$input" ]; then
		failed+=("./$dir $target: failing input ./$dir/$input")
	else
		failed+=("./$dir $target: failed without a failing input (build error or timeout), see the log above")
	fi
}

echo "fuzz: ${#targets[@]} targets, ${budget} each"
start=$SECONDS
failed=()
for entry in "${targets[@]}"; do
	dir=${entry% *}
	target=${entry#* }
	log=$(mktemp)
	t0=$SECONDS
	if "$go" test -tags "$tags" -run '^$' -fuzz "^${target}\$" -fuzztime "$budget" "./$dir" >"$log" 2>&1; then
		echo "ok   ./$dir $target ($((SECONDS - t0))s)"
	elif deadline_race "$log" "$target"; then
		# go.dev/issue/75804 (fixed in Go 1.27, not in 1.26.x): when a
		# duration -fuzztime expires, the coordinator can report its own
		# deadline as the target's failure, with no failing input. A count
		# budget has no deadline, so the same amount of fuzzing is redone
		# with the executions the first run reached.
		execs=$(grep -oE 'execs: [0-9]+' "$log" | tail -n1 | grep -oE '[0-9]+' || true)
		execs=$((${execs:-0} > 1000 ? ${execs:-0} : 1000))
		if "$go" test -tags "$tags" -run '^$' -fuzz "^${target}\$" -fuzztime "${execs}x" "./$dir" >"$log" 2>&1; then
			echo "ok   ./$dir $target ($((SECONDS - t0))s, redone as ${execs}x after go.dev/issue/75804)"
		else
			report_failure
		fi
	else
		report_failure
	fi
	rm -f "$log"
done

echo "fuzz: ${#targets[@]} targets in $((SECONDS - start))s"
if [ ${#failed[@]} -gt 0 ]; then
	echo "fuzz: ${#failed[@]} failed:" >&2
	printf '  %s\n' "${failed[@]}" >&2
	exit 1
fi
