#!/usr/bin/env bash
# ab-cpu.sh: CPU of two all-in-one variants measured at the same time, each
# scraping its own synthetic targets (bench/targetgen, 100k series, 10 s),
# so that the host's drift, which moves one-after-the-other comparisons by
# 10-20 % here, hits both alike (two identical variants differ by 1-2 %).
#
#   bench/ab-cpu.sh BIN_A BIN_B                  two builds, same flags
#   B_ARGS="-agent.publish.flush-interval=10s" bench/ab-cpu.sh BIN BIN
#   B_ENV="GOGC=200" bench/ab-cpu.sh BIN BIN
#
# Prints, per variant, the CPU ticks (1/100 s) over the window, its
# targetgen's ticks and their ratio, then B/A. Knobs: WARMUP (90 s),
# WINDOW (120 s), SERIES (100000), TARGETS (20), A_ARGS, A_ENV, B_ARGS,
# B_ENV. Each variant costs about 5 % of a core.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

[[ $# -eq 2 ]] || die "usage: bench/ab-cpu.sh BIN_A BIN_B"
WARMUP=${WARMUP:-90} WINDOW=${WINDOW:-120} SERIES=${SERIES:-100000} TARGETS=${TARGETS:-20}
work=$(mktemp -d /tmp/pharos-ab.XXXXXX)
RESULTS=$work/result.txt
log "building targetgen into $work"
go build -o "$work/targetgen" ./bench/targetgen

pids=()
cleanup() {
	for p in "${pids[@]}"; do stop_pid "$p" "pid $p" || true; done
	rm -rf "$work"
}
trap cleanup EXIT

# start NAME BIN ENV ARGS: a targetgen and an all-in-one scraping it.
start() {
	local name=$1 bin=$2 envs=$3 args=$4 d=$work/$1
	mkdir -p "$d/data"
	"$work/targetgen" -targets "$TARGETS" -series "$SERIES" -interval 10s -churn 0.01 -config-out "$d/scrape.yml" 2>"$d/targetgen.log" &
	pids+=($!)
	eval "${name}_tg=$!"
	for _ in $(seq 100); do [[ -s $d/scrape.yml ]] && break; sleep 0.1; done
	# shellcheck disable=SC2086 # ARGS and ENV are word lists
	env $envs "$bin" -scrape.config-file="$d/scrape.yml" -data.dir="$d/data" \
		-http.listen-address=127.0.0.1:0 -nats.embedded.listen-address=127.0.0.1:0 \
		-otlp.grpc.listen-address=127.0.0.1:0 -otlp.http.listen-address=127.0.0.1:0 $args >"$d/pharos.log" 2>&1 &
	pids+=($!)
	eval "${name}_px=$!"
}

start a "$1" "${A_ENV:-}" "${A_ARGS:-}"
start b "$2" "${B_ENV:-}" "${B_ARGS:-}"
log "warm-up ${WARMUP}s, then a ${WINDOW}s window"
sleep "$WARMUP"
for v in a b; do
	eval "${v}_p0=\$(cpu_ticks \$${v}_px) ${v}_g0=\$(cpu_ticks \$${v}_tg)"
done
sleep "$WINDOW"
for v in a b; do
	eval "${v}_p1=\$(cpu_ticks \$${v}_px) ${v}_g1=\$(cpu_ticks \$${v}_tg)"
done
say "variant  pharos-ticks  targetgen-ticks  per-targetgen"
for v in a b; do
	eval "p=\$((${v}_p1-${v}_p0)) g=\$((${v}_g1-${v}_g0))"
	eval "${v}_p=$p ${v}_r=$(awk -v p="$p" -v g="$g" 'BEGIN{printf "%.3f", p/g}')"
	say "$(printf '%-8s %12d %16d %14s' "$v" "$p" "$g" "$(eval echo \$${v}_r)")"
done
say "B/A: $(awk -v a="$a_p" -v b="$b_p" 'BEGIN{printf "%.3f", b/a}') (ticks), $(awk -v a="$a_r" -v b="$b_r" 'BEGIN{printf "%.3f", b/a}') (per targetgen tick)"
