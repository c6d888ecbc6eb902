#!/usr/bin/env bash
# bench/traces.sh — traces, telemetrygen to queryable: Pharos (all-in-one:
# OTLP gRPC at the agent → NATS JetStream → aggregator → trace store, span
# metrics on) against Jaeger v1.76.0 (cmd/jaeger, the OpenTelemetry-Collector
# based all-in-one, in-memory storage), fed the same telemetrygen load, one
# after the other in the same run.
#
# Prints spans/s per core, CPU per span, peak RSS, bytes per span on disk,
# trace-by-ID and search latency p50/p99, with ratios Pharos/Jaeger and the
# goals: >= 50k spans/s per core; CPU per span <= 1.0x Jaeger's; trace by ID
# p99 <= 100 ms. See bench/README.md.
#
# Parameters (environment):
#   SPANS=1000000 (total; rounded down to WORKERS x traces x (CHILD_SPANS+1))  CHILD_SPANS=9  WORKERS=4  SERVICE=benchsvc
#   TG_BATCH=512 (telemetrygen --batch-size: spans per export)  TG_QUEUE=<SPANS> (OTEL_BSP_MAX_QUEUE_SIZE of telemetrygen's SDK)
#   QUERY_RUNS=200 (trace IDs timed per endpoint; search requests per system)  CHECK_TRACES=20 (traces whose span counts are compared)
#   SETTLE=10 (s after ingestion, before disk and RSS)  IDLE=5 (s of idle CPU measured before each ingestion)
#   INGEST_TIMEOUT=1800 (s)  STALL_TIMEOUT=120 (s without progress)  DRAIN_TIMEOUT=30 (s without progress once telemetrygen is done)  POLL=0.5 (s)
#   JAEGER_BIN= (a jaeger v2 binary; default: built once into ~/.cache/pharos-bench/jaeger-v1.76.0/)  SKIP_JAEGER=0 (1 = Pharos only)
#   PHAROS_FLAGS= JAEGER_FLAGS= (extra flags, word-split)  KEEP=0 (1 = keep the temp dir)  RESULTS_DIR=bench/results
#   LOAD_MAX= (if set: before each system, wait up to LOAD_WAIT=900 s for the 1-min load average to drop to it)
set -euo pipefail

SPANS=${SPANS:-1000000}
CHILD_SPANS=${CHILD_SPANS:-9}
WORKERS=${WORKERS:-4}
SERVICE=${SERVICE:-benchsvc}
TG_BATCH=${TG_BATCH:-512}
QUERY_RUNS=${QUERY_RUNS:-200}
CHECK_TRACES=${CHECK_TRACES:-20}
SETTLE=${SETTLE:-10}
IDLE=${IDLE:-5}
INGEST_TIMEOUT=${INGEST_TIMEOUT:-1800}
STALL_TIMEOUT=${STALL_TIMEOUT:-120}
POLL=${POLL:-0.5}
JAEGER_VERSION=v1.76.0
JAEGER_BIN=${JAEGER_BIN:-}
SKIP_JAEGER=${SKIP_JAEGER:-0}
PHAROS_FLAGS=${PHAROS_FLAGS:-}
JAEGER_FLAGS=${JAEGER_FLAGS:-}
KEEP=${KEEP:-0}
LOAD_MAX=${LOAD_MAX:-}
LOAD_WAIT=${LOAD_WAIT:-900}

PER_TRACE=$((CHILD_SPANS + 1))
TRACES_PER_WORKER=$((SPANS / WORKERS / PER_TRACE))
((TRACES_PER_WORKER >= 1)) || { echo "SPANS=$SPANS is too small for WORKERS=$WORKERS and CHILD_SPANS=$CHILD_SPANS" >&2; exit 2; }
TRACES=$((TRACES_PER_WORKER * WORKERS))
SPANS=$((TRACES * PER_TRACE))
# telemetrygen's batch span processor drops what does not fit its queue
# (2048 spans by default) and never blocks: with --rate 0 the generator
# outruns the exporter and most spans would be lost in the client. A queue
# as large as the load makes every span arrive (the SDK reads the size from
# the environment).
TG_QUEUE=${TG_QUEUE:-$SPANS}
DRAIN_TIMEOUT=${DRAIN_TIMEOUT:-30}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RESULTS_DIR=${RESULTS_DIR:-$ROOT/bench/results}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$RESULTS_DIR"
RESULTS=$RESULTS_DIR/traces-$STAMP.txt
LOGDIR=$RESULTS_DIR/traces-$STAMP.logs
mkdir -p "$LOGDIR"
WORK=$(mktemp -d /tmp/pharos-bench-traces.XXXXXX)
CLK_TCK=$(getconf CLK_TCK)
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/pharos-bench/jaeger-$JAEGER_VERSION
TELEMETRYGEN=${TELEMETRYGEN:-$(go env GOPATH)/bin/telemetrygen}

PIDS=()
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

cleanup() {
	local rc=$?
	for pid in "${PIDS[@]}"; do
		if kill -0 "$pid" 2>/dev/null; then stop_pid "$pid" "pid $pid"; log "$STOP_MSG"; fi
	done
	if [[ $KEEP == 1 ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------
# Helpers (and those of bench/lib.sh).

wait_ready() {
	local url=$1 pid=$2
	for _ in $(seq 240); do
		kill -0 "$pid" 2>/dev/null || return 1
		curl -fsS --max-time 2 -o /dev/null "$url" 2>/dev/null && return 0
		sleep 0.5
	done
	return 1
}
wait_load() {
	local sys=$1 waited=0
	[[ -n $LOAD_MAX ]] || return 0
	while awk -v l="$(cut -d' ' -f1 /proc/loadavg)" -v m="$LOAD_MAX" 'BEGIN{exit !(l+0 > m+0)}' && ((waited < LOAD_WAIT)); do
		((waited % 60 == 0)) && log "[$sys] load $(cut -d' ' -f1 /proc/loadavg) > LOAD_MAX=$LOAD_MAX: waiting (up to ${LOAD_WAIT}s)"
		sleep 5; waited=$((waited + 5))
	done
}

# ---------------------------------------------------------------------------
# Build and prerequisites.

command -v curl >/dev/null || die "curl is needed"
command -v jq >/dev/null || die "jq is needed (apt-get install -y jq)"
[[ -x $TELEMETRYGEN ]] || TELEMETRYGEN=$(command -v telemetrygen || true)
[[ -n $TELEMETRYGEN && -x $TELEMETRYGEN ]] || die "telemetrygen not found (scripts/install-test-deps.sh installs it into \$(go env GOPATH)/bin)"

log "building pharos and loggen (for free ports) into $WORK"
(cd "$ROOT" && go build -o "$WORK/pharos" ./cmd/pharos && go build -o "$WORK/loggen" ./bench/loggen) || die "build failed"

if [[ $SKIP_JAEGER != 1 ]]; then
	if [[ -n $JAEGER_BIN ]]; then
		[[ -x $JAEGER_BIN ]] || die "JAEGER_BIN=$JAEGER_BIN is not an executable"
	elif [[ -x $CACHE/jaeger ]]; then
		JAEGER_BIN=$CACHE/jaeger
	else
		# A plain `go install …@v1.76.0` is refused (its go.mod has replace
		# directives), so it is built as a tool of a scratch module outside
		# the project. Cold: ~6 minutes on 2 cores.
		log "building jaeger $JAEGER_VERSION into $CACHE (once; a cold build takes minutes)"
		mkdir -p "$CACHE/src"
		(cd "$CACHE/src" && { [[ -f go.mod ]] || go mod init x; } &&
			go get -tool "github.com/jaegertracing/jaeger/cmd/jaeger@$JAEGER_VERSION" &&
			go build -o "$CACHE/jaeger.tmp" github.com/jaegertracing/jaeger/cmd/jaeger &&
			mv "$CACHE/jaeger.tmp" "$CACHE/jaeger") >"$LOGDIR/jaeger-build.log" 2>&1 ||
			die "building jaeger failed (see $LOGDIR/jaeger-build.log)"
		JAEGER_BIN=$CACHE/jaeger
	fi
fi

PHAROS_VERSION=$("$WORK/pharos" -version 2>&1 | head -1 || true)
GIT_REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
GIT_DIRTY=$(git -C "$ROOT" status --porcelain 2>/dev/null | wc -l)
TG_VERSION=$(go version -m "$TELEMETRYGEN" 2>/dev/null | awk '$1 == "mod" {print $3; exit}' || true)
JAEGER_DESC=skipped
if [[ $SKIP_JAEGER != 1 ]]; then
	# A go-build binary carries no version (`jaeger version` prints empty fields).
	JAEGER_DESC="$("$JAEGER_BIN" version 2>/dev/null | grep -o '"gitVersion":"[^"]*"' | cut -d'"' -f4 | head -1 || true)"
	[[ -n $JAEGER_DESC ]] || { [[ $JAEGER_BIN == "$CACHE/jaeger" ]] && JAEGER_DESC="$JAEGER_VERSION (built from the module)"; } || JAEGER_DESC="version unknown"
	JAEGER_DESC="$JAEGER_DESC, $JAEGER_BIN"
fi

# Ports: loopback only.
mapfile -t PORTS < <("$WORK/loggen" free-ports 9)
PHAROS_ADDR=127.0.0.1:${PORTS[0]}
NATS_ADDR=127.0.0.1:${PORTS[1]}
PHAROS_OTLP=127.0.0.1:${PORTS[2]}
JAEGER_OTLP=127.0.0.1:${PORTS[3]}
JAEGER_QUERY=127.0.0.1:${PORTS[4]}
JAEGER_QUERY_GRPC=127.0.0.1:${PORTS[5]}
JAEGER_METRICS_PORT=${PORTS[6]}
JAEGER_METRICS=127.0.0.1:$JAEGER_METRICS_PORT
JAEGER_HEALTH=127.0.0.1:${PORTS[7]}

: >"$RESULTS"
say "# Pharos vs Jaeger — traces, telemetrygen to queryable ($STAMP)"
say ""
say "machine:       $(nproc) CPUs, $(awk '/MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
say "load:          $(uptime | sed 's/^ *//')   (at start; other users of the machine build and test too)"
say "jaeger:        $JAEGER_DESC — cmd/jaeger (OTel Collector based all-in-one), memory storage (no durability)"
say "pharos:        ${PHAROS_VERSION:-?} — built from $ROOT at $GIT_REV, $GIT_DIRTY uncommitted/untracked paths in the work tree"
say "traffic:       telemetrygen ${TG_VERSION:-?} traces: $WORKERS workers × $TRACES_PER_WORKER traces × $PER_TRACE spans (1 root + $CHILD_SPANS children), --rate 0, service $SERVICE,"
say "               --batch-size $TG_BATCH, OTEL_BSP_MAX_QUEUE_SIZE=$TG_QUEUE (so that the client drops nothing)"
say "               = $TRACES traces, $SPANS spans, OTLP gRPC, the same command line for both systems"
say "pharos path:   OTLP gRPC at the agent → embedded NATS JetStream (fsync) → aggregator → trace store (durable) + span metrics + service graph"
say "jaeger path:   OTLP gRPC receiver → batch processor → jaeger_storage_exporter → memory store"
say ""

declare -A R

# telemetrygen ENDPOINT NAME: runs the load in the background (its own CPU
# goes to $WORK/NAME.tg-times via the shell's `times`). Sets TG_PID.
TG_PID=
run_telemetrygen() {
	local ep=$1 name=$2
	OTEL_BSP_MAX_QUEUE_SIZE=$TG_QUEUE \
		bash -c '"$@" >"'"$LOGDIR/$name.telemetrygen.log"'" 2>&1; rc=$?; times >"'"$WORK/$name.tg-times"'"; exit $rc' _ \
		"$TELEMETRYGEN" traces --otlp-endpoint "$ep" --otlp-insecure --traces "$TRACES_PER_WORKER" \
		--child-spans "$CHILD_SPANS" --workers "$WORKERS" --rate 0 --service "$SERVICE" --batch-size "$TG_BATCH" &
	TG_PID=$!
	PIDS+=("$TG_PID")
}
tg_cpu() { # seconds of user+sys of telemetrygen (children line of `times`)
	awk 'NR==2{ s=0; for(i=1;i<=2;i++){ split($i, a, /[ms]/); s+=a[1]*60+a[2] } printf "%.2f", s }' "$WORK/$1.tg-times" 2>/dev/null || echo nan
}

# ingest SYS PID METRICS_URL METRIC LABELMATCH OTLP: measures from just
# before telemetrygen starts until the system's stored-spans counter
# reaches SPANS. Sets R[SYS,*].
ingest() {
	local sys=$1 pid=$2 url=$3 m=$4 lm=$5 ep=$6
	local c0 t0 mb0 mt0 t1 c1 mb1 mt1 v last_v=-1 last_change now tg_rc=
	read -r mb0 mt0 < <(machine_busy)
	c0=$(cpu_ticks "$pid"); t0=$(date +%s.%N)
	run_telemetrygen "$ep" "$sys"
	last_change=$t0
	: >"$LOGDIR/$sys.progress.tsv"
	R[$sys,complete]=yes
	while :; do
		kill -0 "$pid" 2>/dev/null || die "[$sys] process exited during ingestion (see $LOGDIR/$sys.log)"
		v=$(metric "$url" "$m" "$lm")
		now=$(date +%s.%N)
		printf '%s\t%s\t%s\n' "$(calc '%.2f' "$now - $t0")" "${v:-}" "$(calc '%.2f' "($(cpu_ticks "$pid") - $c0) / $CLK_TCK")" >>"$LOGDIR/$sys.progress.tsv"
		if [[ -n $v ]] && ((v >= SPANS)); then c1=$(cpu_ticks "$pid"); t1=$now; break; fi
		if [[ ${v:-0} != "$last_v" ]]; then
			last_v=${v:-0}; last_change=$now
		elif awk -v a="$now" -v b="$last_change" -v s="$STALL_TIMEOUT" 'BEGIN{exit !(a-b >= s)}'; then
			log "[$sys] STALL_TIMEOUT: no progress for ${STALL_TIMEOUT}s at $v of $SPANS spans"
			c1=$(cpu_ticks "$pid"); t1=$now; R[$sys,complete]="NO ($v of $SPANS, stalled)"; break
		elif [[ -n $tg_rc ]] && awk -v a="$now" -v b="$last_change" -v s="$DRAIN_TIMEOUT" 'BEGIN{exit !(a-b >= s)}'; then
			log "[$sys] telemetrygen is done and no progress for ${DRAIN_TIMEOUT}s at $v of $SPANS spans (spans lost in the client? see the agent/receiver counters)"
			c1=$(cpu_ticks "$pid"); t1=$now; R[$sys,complete]="NO ($v of $SPANS after telemetrygen finished)"; break
		fi
		if [[ -z $tg_rc ]] && ! kill -0 "$TG_PID" 2>/dev/null; then
			tg_rc=0; wait "$TG_PID" || tg_rc=$?
			R[$sys,tg_secs]=$(calc '%.2f' "$(date +%s.%N) - $t0")
			[[ $tg_rc == 0 ]] || log "[$sys] telemetrygen exited with status $tg_rc (see $LOGDIR/$sys.telemetrygen.log)"
		fi
		if awk -v a="$now" -v b="$t0" -v s="$INGEST_TIMEOUT" 'BEGIN{exit !(a-b >= s)}'; then
			log "[$sys] INGEST_TIMEOUT: $v of $SPANS spans after ${INGEST_TIMEOUT}s"
			c1=$(cpu_ticks "$pid"); t1=$now; R[$sys,complete]="NO ($v of $SPANS)"; break
		fi
		sleep "$POLL"
	done
	read -r mb1 mt1 < <(machine_busy)
	if [[ -z $tg_rc ]]; then
		tg_rc=0; wait "$TG_PID" || tg_rc=$?
		R[$sys,tg_secs]=${R[$sys,tg_secs]:-$(calc '%.2f' "$(date +%s.%N) - $t0")}
	fi
	local secs cpu
	secs=$(calc '%.3f' "$t1 - $t0")
	cpu=$(calc '%.3f' "($c1 - $c0) / $CLK_TCK")
	R[$sys,t0]=$t0; R[$sys,t1]=$t1; R[$sys,c0]=$c0
	R[$sys,stored]=$v
	R[$sys,secs]=$secs
	R[$sys,cpu]=$cpu
	R[$sys,tg_rc]=$tg_rc
	R[$sys,tg_cpu]=$(tg_cpu "$sys")
	R[$sys,cores]=$(calc '%.2f' "$cpu / $secs")
	R[$sys,sps]=$(calc '%.0f' "$SPANS / $secs")
	R[$sys,sps_core]=$(calc '%.0f' "$SPANS / $cpu")
	R[$sys,us_span]=$(calc '%.2f' "$cpu * 1e6 / $SPANS")
	R[$sys,machine_busy]=$(calc '%.0f' "100 * ($mb1 - $mb0) / ($mt1 - $mt0)")
	R[$sys,other_cores]=$(calc '%.2f' "$(nproc) * (($mb1 - $mb0) - ($c1 - $c0) - ${R[$sys,tg_cpu]} * $CLK_TCK) / ($mt1 - $mt0)")
	log "[$sys] $v of $SPANS spans stored in ${secs}s, ${cpu} CPU-s (${R[$sys,sps_core]} spans/s per core); telemetrygen ${R[$sys,tg_cpu]} CPU-s, exit $tg_rc"
}

# settle SYS PID: SETTLE s, then CPU including the settle and peak RSS.
settle() {
	local sys=$1 pid=$2
	sleep "$SETTLE"
	R[$sys,settle_secs]=$(calc '%.1f' "$(date +%s.%N) - ${R[$sys,t0]}")
	R[$sys,cpu_settle]=$(calc '%.3f' "($(cpu_ticks "$pid") - ${R[$sys,c0]}) / $CLK_TCK")
	R[$sys,us_span_settle]=$(calc '%.2f' "${R[$sys,cpu_settle]} * 1e6 / $SPANS")
	R[$sys,hwm]=$(hwm_kb "$pid")
	R[$sys,rss]=$(rss_kb "$pid")
}

# timed_gets SYS NAME ACCEPT URL...: one curl process (keep-alive) GETs every
# URL; writes "<seconds> <code> <bytes>" per URL to $WORK/SYS.NAME and sets
# R[SYS,NAME,p50|p99|max|bad] (ms; bad = non-200 answers).
timed_gets() {
	local sys=$1 name=$2 accept=$3 cfg=$WORK/$1.$2.curl u
	shift 3
	: >"$cfg"
	for u in "$@"; do printf 'url = "%s"\noutput = "/dev/null"\n' "$u" >>"$cfg"; done
	curl -sS --max-time 60 -H "Accept: $accept" -w '%{time_total} %{http_code} %{size_download}\n' -K "$cfg" >"$WORK/$sys.$name" 2>>"$LOGDIR/curl.log" || true
	R[$sys,$name,n]=$(wc -l <"$WORK/$sys.$name")
	R[$sys,$name,bad]=$(awk '$2 != 200' "$WORK/$sys.$name" | wc -l)
	R[$sys,$name,p50]=$(calc '%.1f' "$(awk '{print $1}' "$WORK/$sys.$name" | pct 50) * 1000")
	R[$sys,$name,p99]=$(calc '%.1f' "$(awk '{print $1}' "$WORK/$sys.$name" | pct 99) * 1000")
	R[$sys,$name,max]=$(calc '%.1f' "$(awk '{print $1}' "$WORK/$sys.$name" | pct 100) * 1000")
	R[$sys,$name,bytes]=$(awk '{s+=$3} END{if(NR) printf "%.0f", s/NR}' "$WORK/$sys.$name")
	log "[$sys] $name: ${R[$sys,$name,n]} requests, p50 ${R[$sys,$name,p50]} ms, p99 ${R[$sys,$name,p99]} ms, non-200 ${R[$sys,$name,bad]}"
}

# collect_ids SYS: about QUERY_RUNS distinct trace IDs spread over the
# ingestion, from each system's own search (telemetrygen makes random IDs,
# so each system is timed on its own traces), into $WORK/SYS.ids.
collect_ids() {
	local sys=$1 slices lo hi i per out=$WORK/$1.ids
	slices=$(calc '%.0f' "${R[$sys,secs]}")
	((slices >= 1)) || slices=1
	((slices <= 10)) || slices=10
	per=$(((QUERY_RUNS + slices - 1) / slices + 1))
	: >"$out.all"
	for ((i = 0; i < slices; i++)); do
		lo=$(calc '%.6f' "${R[$sys,t0]} - 1 + $i * (${R[$sys,t1]} - ${R[$sys,t0]} + 2) / $slices")
		hi=$(calc '%.6f' "${R[$sys,t0]} - 1 + ($i + 1) * (${R[$sys,t1]} - ${R[$sys,t0]} + 2) / $slices")
		if [[ $sys == pharos ]]; then
			curl -fsS --max-time 60 -G "http://$PHAROS_ADDR/api/search" --data-urlencode "q={resource.service.name=\"$SERVICE\"}" \
				--data-urlencode "limit=$per" --data-urlencode "start=$(calc '%.0f' "$lo - 0.5")" --data-urlencode "end=$(calc '%.0f' "$hi + 0.5")" 2>>"$LOGDIR/curl.log" |
				jq -r '.traces[].traceID' >>"$out.all" 2>/dev/null || true
		else
			curl -fsS --max-time 60 -G "http://$JAEGER_QUERY/api/traces" --data-urlencode "service=$SERVICE" --data-urlencode "limit=$per" \
				--data-urlencode "start=$(calc '%.0f' "$lo * 1e6")" --data-urlencode "end=$(calc '%.0f' "$hi * 1e6")" 2>>"$LOGDIR/curl.log" |
				jq -r '.data[].traceID' >>"$out.all" 2>/dev/null || true
		fi
	done
	# Too few from the slices (a short window, or a system's search that
	# favours recent traces): top up from one search over everything.
	if (($(sort -u "$out.all" | wc -l) < QUERY_RUNS)); then
		if [[ $sys == pharos ]]; then
			curl -fsS --max-time 60 -G "http://$PHAROS_ADDR/api/search" --data-urlencode "q={resource.service.name=\"$SERVICE\"}" \
				--data-urlencode "limit=$((QUERY_RUNS * 2))" 2>>"$LOGDIR/curl.log" | jq -r '.traces[].traceID' >>"$out.all" 2>/dev/null || true
		else
			curl -fsS --max-time 60 -G "http://$JAEGER_QUERY/api/traces" --data-urlencode "service=$SERVICE" \
				--data-urlencode "limit=$((QUERY_RUNS * 2))" 2>>"$LOGDIR/curl.log" | jq -r '.data[].traceID' >>"$out.all" 2>/dev/null || true
		fi
	fi
	# (No head in a pipe: under pipefail, awk killed by SIGPIPE when it has
	# more to write, as when Jaeger returns more traces than the limit,
	# would end the script.)
	awk -v n="$QUERY_RUNS" '!seen[$0]++ && c++ < n' "$out.all" >"$out"
	R[$sys,ids]=$(wc -l <"$out")
	log "[$sys] $(wc -l <"$out") trace IDs collected in $slices time slices (${R[$sys,ids]} of $QUERY_RUNS wanted)"
}

# check_spans SYS: span counts of the first CHECK_TRACES traces through
# each trace-by-ID endpoint; counts the traces that do not have PER_TRACE.
check_spans() {
	local sys=$1 id n bad=0 n_pj bad_pj=0 line
	: >"$LOGDIR/$sys.span-counts.tsv"
	while read -r id; do
		if [[ $sys == pharos ]]; then
			n=$(curl -fsS --max-time 30 "http://$PHAROS_ADDR/api/traces/$id" | jq '[.batches[]?.scopeSpans[]?.spans[]?] | length' 2>/dev/null || echo error)
			n_pj=$(curl -fsS --max-time 30 "http://$PHAROS_ADDR/jaeger/api/traces/$id" | jq '.data[0].spans | length' 2>/dev/null || echo error)
			[[ $n_pj == "$PER_TRACE" ]] || bad_pj=$((bad_pj + 1))
			line="$id	$n	$n_pj"
		else
			n=$(curl -fsS --max-time 30 "http://$JAEGER_QUERY/api/traces/$id" | jq '.data[0].spans | length' 2>/dev/null || echo error)
			line="$id	$n"
		fi
		[[ $n == "$PER_TRACE" ]] || bad=$((bad + 1))
		echo "$line" >>"$LOGDIR/$sys.span-counts.tsv"
	done < <(head -n "$CHECK_TRACES" "$WORK/$sys.ids")
	R[$sys,check_n]=$(wc -l <"$LOGDIR/$sys.span-counts.tsv")
	R[$sys,check_bad]=$bad
	R[$sys,check_bad_pj]=$bad_pj
	log "[$sys] span counts of ${R[$sys,check_n]} traces: $bad without $PER_TRACE spans${n_pj:+ (Tempo API), $bad_pj (Jaeger API)}"
}

# shape FILE: the JSON key paths of a Jaeger API answer (array indexes and
# map keys that are IDs folded), one per line, for comparing response shapes.
shape() {
	jq -r '[paths | map(if type == "number" then "[]" else . end)
		| map(if test("^(p[0-9]+|[0-9a-f]{16,32})$") then "<id>" else . end) | join(".")] | unique[]' "$1" 2>/dev/null || true
}

# latency SYS: trace by ID over the collected IDs, and QUERY_RUNS searches.
latency() {
	local sys=$1 ids urls=() id i
	mapfile -t ids <"$WORK/$sys.ids"
	if [[ $sys == pharos ]]; then
		urls=(); for id in "${ids[@]}"; do urls+=("http://$PHAROS_ADDR/api/traces/$id"); done
		timed_gets pharos byid 'application/protobuf' "${urls[@]}"
		urls=(); for id in "${ids[@]}"; do urls+=("http://$PHAROS_ADDR/jaeger/api/traces/$id"); done
		timed_gets pharos byid_jaeger 'application/json' "${urls[@]}"
		urls=(); for ((i = 0; i < QUERY_RUNS; i++)); do
			urls+=("http://$PHAROS_ADDR/api/search?q=%7Bresource.service.name%3D%22$SERVICE%22%7D&limit=20")
		done
		timed_gets pharos search 'application/json' "${urls[@]}"
		urls=(); for ((i = 0; i < QUERY_RUNS; i++)); do urls+=("http://$PHAROS_ADDR/jaeger/api/traces?service=$SERVICE&limit=20"); done
		timed_gets pharos search_jaeger 'application/json' "${urls[@]}"
	else
		urls=(); for id in "${ids[@]}"; do urls+=("http://$JAEGER_QUERY/api/traces/$id"); done
		timed_gets jaeger byid 'application/json' "${urls[@]}"
		R[jaeger,byid_jaeger,p50]=${R[jaeger,byid,p50]}; R[jaeger,byid_jaeger,p99]=${R[jaeger,byid,p99]}
		R[jaeger,byid_jaeger,bad]=${R[jaeger,byid,bad]}; R[jaeger,byid_jaeger,bytes]=${R[jaeger,byid,bytes]}
		urls=(); for ((i = 0; i < QUERY_RUNS; i++)); do urls+=("http://$JAEGER_QUERY/api/traces?service=$SERVICE&limit=20"); done
		timed_gets jaeger search 'application/json' "${urls[@]}"
		R[jaeger,search_jaeger,p50]=${R[jaeger,search,p50]}; R[jaeger,search_jaeger,p99]=${R[jaeger,search,p99]}
		R[jaeger,search_jaeger,bad]=${R[jaeger,search,bad]}; R[jaeger,search_jaeger,bytes]=${R[jaeger,search,bytes]}
	fi
	# One answer of each kind kept, for the response-shape comparison.
	id=${ids[0]:-none}
	if [[ $sys == pharos ]]; then
		curl -fsS --max-time 30 "http://$PHAROS_ADDR/jaeger/api/traces/$id" >"$LOGDIR/pharos.jaeger-trace.json" 2>/dev/null || true
		curl -fsS --max-time 30 "http://$PHAROS_ADDR/jaeger/api/traces?service=$SERVICE&limit=2" >"$LOGDIR/pharos.jaeger-search.json" 2>/dev/null || true
		curl -fsS --max-time 30 "http://$PHAROS_ADDR/jaeger/api/services" >"$LOGDIR/pharos.jaeger-services.json" 2>/dev/null || true
	else
		curl -fsS --max-time 30 "http://$JAEGER_QUERY/api/traces/$id" >"$LOGDIR/jaeger.jaeger-trace.json" 2>/dev/null || true
		curl -fsS --max-time 30 "http://$JAEGER_QUERY/api/traces?service=$SERVICE&limit=2" >"$LOGDIR/jaeger.jaeger-search.json" 2>/dev/null || true
		curl -fsS --max-time 30 "http://$JAEGER_QUERY/api/services" >"$LOGDIR/jaeger.jaeger-services.json" 2>/dev/null || true
	fi
}

# ---------------------------------------------------------------------------
# Pharos.

wait_load pharos
PHAROS_CMD=("$WORK/pharos" -data.dir="$WORK/pharos-data" -http.listen-address="$PHAROS_ADDR"
	-nats.embedded.listen-address="$NATS_ADDR" -otlp.grpc.listen-address="$PHAROS_OTLP" -otlp.http.listen-address=127.0.0.1:0)
# shellcheck disable=SC2206 # word splitting wanted
PHAROS_CMD+=($PHAROS_FLAGS)
log "[pharos] starting: ${PHAROS_CMD[*]}"
"${PHAROS_CMD[@]}" >"$LOGDIR/pharos.stdout.log" 2>"$LOGDIR/pharos.log" &
PHAROS_PID=$!
PIDS+=("$PHAROS_PID")
wait_ready "http://$PHAROS_ADDR/ready" "$PHAROS_PID" || { tail -20 "$LOGDIR/pharos.log" >&2; die "[pharos] not ready"; }
c=$(cpu_ticks "$PHAROS_PID"); sleep "$IDLE"
R[pharos,idle]=$(calc '%.3f' "($(cpu_ticks "$PHAROS_PID") - $c) / $CLK_TCK / $IDLE")
log "[pharos] ready (pid $PHAROS_PID), idle ${R[pharos,idle]} cores; sending $SPANS spans to $PHAROS_OTLP"
L0=$(wc -l <"$LOGDIR/pharos.log")
ingest pharos "$PHAROS_PID" "http://$PHAROS_ADDR/metrics" pharos_aggregator_spans_appended_total "" "$PHAROS_OTLP"
settle pharos "$PHAROS_PID"
# Disk once nothing is pending or only in memory (at most 60 s more).
for _ in $(seq 120); do
	pend=$(metric "http://$PHAROS_ADDR/metrics" pharos_traces_pending_spans)
	inmem=$(metric "http://$PHAROS_ADDR/metrics" pharos_traces_stored_spans 'location="memory"')
	[[ ${pend:-0} == 0 && ${inmem:-0} == 0 ]] && break
	sleep 0.5
done
R[pharos,inmem_left]="${inmem:-?} in memory, ${pend:-?} pending"
R[pharos,disk]=$(du -sb "$WORK/pharos-data/traces" | cut -f1)
R[pharos,disk_alloc]=$(du -sB1 "$WORK/pharos-data/traces" | cut -f1)
R[pharos,nats]=$(du -sb "$WORK/pharos-data/nats" 2>/dev/null | cut -f1)
R[pharos,datadir]=$(du -sb "$WORK/pharos-data" | cut -f1)
R[pharos,b_span]=$(calc '%.1f' "${R[pharos,disk]} / $SPANS")
R[pharos,b_span_alloc]=$(calc '%.1f' "${R[pharos,disk_alloc]} / $SPANS")
R[pharos,b_span_dir]=$(calc '%.1f' "${R[pharos,datadir]} / $SPANS")
(cd "$WORK/pharos-data" && du -ab . | sort -k2) >"$LOGDIR/pharos.du.txt" 2>/dev/null || true
curl -fsS --max-time 20 "http://$PHAROS_ADDR/metrics" >"$LOGDIR/pharos.metrics.txt" 2>/dev/null || true
collect_ids pharos
check_spans pharos
latency pharos
R[pharos,hwm_end]=$(hwm_kb "$PHAROS_PID")
sed -n "$((L0 + 1)),\$p" "$LOGDIR/pharos.log" >"$LOGDIR/pharos.window.log"
stop_pid "$PHAROS_PID" pharos
R[pharos,stop]=$STOP_MSG
log "[pharos] $STOP_MSG"

# ---------------------------------------------------------------------------
# Jaeger: cmd/jaeger with a configuration like its built-in all-in-one one
# (memory storage), on free loopback ports, only the OTLP gRPC receiver, and
# a memory store large enough for every trace (the built-in keeps 100,000).

if [[ $SKIP_JAEGER != 1 ]]; then
	wait_load jaeger
	cat >"$WORK/jaeger.yaml" <<EOF
service:
  extensions: [jaeger_storage, jaeger_query, healthcheckv2]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    resource:
      service.name: jaeger
    metrics:
      level: detailed
      readers:
        - pull:
            exporter:
              prometheus:
                host: 127.0.0.1
                port: $JAEGER_METRICS_PORT
    logs:
      level: info
extensions:
  jaeger_query:
    storage:
      traces: bench_store
    http:
      endpoint: $JAEGER_QUERY
    grpc:
      endpoint: $JAEGER_QUERY_GRPC
  jaeger_storage:
    backends:
      bench_store:
        memory:
          max_traces: $((TRACES * 2 + 1000))
  healthcheckv2:
    use_v2: true
    http:
      endpoint: $JAEGER_HEALTH
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: $JAEGER_OTLP
processors:
  batch:
exporters:
  jaeger_storage_exporter:
    trace_storage: bench_store
EOF
	cp "$WORK/jaeger.yaml" "$LOGDIR/jaeger.yaml"
	JAEGER_CMD=("$JAEGER_BIN" --config "$WORK/jaeger.yaml")
	# shellcheck disable=SC2206 # word splitting wanted
	JAEGER_CMD+=($JAEGER_FLAGS)
	log "[jaeger] starting: ${JAEGER_CMD[*]}"
	"${JAEGER_CMD[@]}" >"$LOGDIR/jaeger.stdout.log" 2>"$LOGDIR/jaeger.log" &
	JAEGER_PID=$!
	PIDS+=("$JAEGER_PID")
	wait_ready "http://$JAEGER_QUERY/api/services" "$JAEGER_PID" || { tail -20 "$LOGDIR/jaeger.log" >&2; die "[jaeger] not ready"; }
	wait_ready "http://$JAEGER_METRICS/metrics" "$JAEGER_PID" || { tail -20 "$LOGDIR/jaeger.log" >&2; die "[jaeger] no /metrics"; }
	c=$(cpu_ticks "$JAEGER_PID"); sleep "$IDLE"
	R[jaeger,idle]=$(calc '%.3f' "($(cpu_ticks "$JAEGER_PID") - $c) / $CLK_TCK / $IDLE")
	log "[jaeger] ready (pid $JAEGER_PID), idle ${R[jaeger,idle]} cores; sending $SPANS spans to $JAEGER_OTLP"
	# Spans the storage exporter has written to the memory store: queryable.
	ingest jaeger "$JAEGER_PID" "http://$JAEGER_METRICS/metrics" otelcol_exporter_sent_spans_total 'exporter="jaeger_storage_exporter"' "$JAEGER_OTLP"
	settle jaeger "$JAEGER_PID"
	curl -fsS --max-time 20 "http://$JAEGER_METRICS/metrics" >"$LOGDIR/jaeger.metrics.txt" 2>/dev/null || true
	collect_ids jaeger
	check_spans jaeger
	latency jaeger
	R[jaeger,hwm_end]=$(hwm_kb "$JAEGER_PID")
	stop_pid "$JAEGER_PID" jaeger
	R[jaeger,stop]=$STOP_MSG
	log "[jaeger] $STOP_MSG"
fi

# ---------------------------------------------------------------------------
# Report.

J() { if [[ $SKIP_JAEGER == 1 ]]; then echo "-"; else echo "${R[jaeger,$1]:-?}"; fi; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b+0 == 0 || a == "nan" || b == "nan" || a == "" || b == "" || a == "-" || b == "-") print "n/a"; else printf "%.2f", a/b }'; }
check() { awk -v v="$1" -v op="$2" -v l="$3" 'BEGIN{ if (v == "n/a" || v == "nan" || v == "") print "?"; else if ((op == "<=" && v+0 <= l+0) || (op == ">=" && v+0 >= l+0)) print "met"; else print "MISSED" }'; }
row() { # name jaeger pharos [goal-op goal-limit]
	local r; r=$(ratio "$3" "$2")
	if [[ -n ${4:-} ]]; then
		say "$(printf '%-46s %14s %14s %8s   %-8s %s' "$1" "$2" "$3" "$r" "$4 $5" "$(check "$r" "$4" "$5")")"
	else
		say "$(printf '%-46s %14s %14s %8s' "$1" "$2" "$3" "$r")"
	fi
}
plain() { say "$(printf '%-46s %14s %14s' "$1" "$2" "$3")"; }
mib() { [[ $1 == - || $1 == \? ]] && { echo "$1"; return; }; calc '%.0f' "$1 / 1024"; }

say "## Result (ratios Pharos/Jaeger)"
say ""
say "$(printf '%-46s %14s %14s %8s   %-8s' metric Jaeger Pharos ratio goal)"
say "$(printf '%.0s-' $(seq 100))"
row "CPU µs per span (until all stored)" "$(J us_span)" "${R[pharos,us_span]}" "<=" 1.0
row "CPU µs per span (incl. ${SETTLE}s settle)" "$(J us_span_settle)" "${R[pharos,us_span_settle]}"
row "spans/s per core (spans / CPU-s)" "$(J sps_core)" "${R[pharos,sps_core]}"
row "spans/s (wall, until all stored)" "$(J sps)" "${R[pharos,sps]}"
row "peak RSS (VmHWM, MiB)" "$(mib "$(J hwm)")" "$(mib "${R[pharos,hwm]}")"
plain "bytes per span on disk (du -sb / allocated)" "memory only" "${R[pharos,b_span]} / ${R[pharos,b_span_alloc]}"
row "trace by ID p50 (ms)" "$(J byid,p50)" "${R[pharos,byid,p50]}"
row "trace by ID p99 (ms)" "$(J byid,p99)" "${R[pharos,byid,p99]}"
row "trace by ID, Jaeger API p50 (ms)" "$(J byid_jaeger,p50)" "${R[pharos,byid_jaeger,p50]}"
row "trace by ID, Jaeger API p99 (ms)" "$(J byid_jaeger,p99)" "${R[pharos,byid_jaeger,p99]}"
row "search, limit 20, p50 (ms)" "$(J search,p50)" "${R[pharos,search,p50]}"
row "search, limit 20, p99 (ms)" "$(J search,p99)" "${R[pharos,search,p99]}"
row "search, Jaeger API, limit 20, p50 (ms)" "$(J search_jaeger,p50)" "${R[pharos,search_jaeger,p50]}"
row "search, Jaeger API, limit 20, p99 (ms)" "$(J search_jaeger,p99)" "${R[pharos,search_jaeger,p99]}"
say ""
say "Goals: Pharos ${R[pharos,sps_core]} spans/s per core >= 50000: $(check "${R[pharos,sps_core]}" ">=" 50000);"
say "  CPU per span <= 1.0x Jaeger's: $(check "$(ratio "${R[pharos,us_span]}" "$(J us_span)")" "<=" 1.0) (Pharos does more: the NATS hop with fsync, durable storage, span metrics and service graph);"
say "  trace by ID p99 ${R[pharos,byid,p99]} ms <= 100: $(check "${R[pharos,byid,p99]}" "<=" 100)."
say ""
say "trace by ID: Pharos GET /api/traces/<id> (Accept: application/protobuf, Grafana's Tempo data source) — Jaeger GET /api/traces/<id>;"
say "             'Jaeger API' rows: Pharos /jaeger/api/traces/<id>. Each system on ${R[pharos,ids]:-?} / $(J ids) IDs of its own traces"
say "             (telemetrygen's IDs are random), picked from its own search across the ingestion window; one keep-alive curl, %{time_total}."
say "search:      Pharos GET /api/search?q={resource.service.name=\"$SERVICE\"}&limit=20 — Jaeger GET /api/traces?service=$SERVICE&limit=20;"
say "             'Jaeger API' rows: Pharos /jaeger/api/traces?service=$SERVICE&limit=20. $QUERY_RUNS requests each, system idle."
say ""
say "## Details"
say ""
say "$(printf '%-46s %14s %14s' '' Jaeger Pharos)"
plain "all spans stored" "$(J complete)" "${R[pharos,complete]}"
plain "stored-spans counter at the end" "$(J stored)" "${R[pharos,stored]}"
plain "wall time until all stored (s)" "$(J secs)" "${R[pharos,secs]}"
plain "telemetrygen wall time (s), exit status" "$(J tg_secs), $(J tg_rc)" "${R[pharos,tg_secs]}, ${R[pharos,tg_rc]}"
plain "telemetrygen CPU-s (not counted)" "$(J tg_cpu)" "${R[pharos,tg_cpu]}"
plain "CPU-seconds until all stored" "$(J cpu)" "${R[pharos,cpu]}"
plain "CPU cores used (avg over the ingestion)" "$(J cores)" "${R[pharos,cores]}"
plain "CPU-seconds incl. settle (window s)" "$(J cpu_settle) ($(J settle_secs))" "${R[pharos,cpu_settle]} (${R[pharos,settle_secs]})"
plain "idle CPU before ingestion (cores)" "$(J idle)" "${R[pharos,idle]}"
plain "RSS after settle (MiB)" "$(mib "$(J rss)")" "$(mib "${R[pharos,rss]}")"
plain "peak RSS after the queries (MiB)" "$(mib "$(J hwm_end)")" "$(mib "${R[pharos,hwm_end]}")"
plain "trace store du -sb / allocated (bytes)" "-" "${R[pharos,disk]} / ${R[pharos,disk_alloc]}"
plain "JetStream store after settle (bytes)" "-" "${R[pharos,nats]}"
plain "whole data dir (bytes; per span)" "-" "${R[pharos,datadir]} (${R[pharos,b_span_dir]})"
plain "left when du ran" "-" "${R[pharos,inmem_left]}"
plain "traces checked / without $PER_TRACE spans" "$(J check_n) / $(J check_bad)" "${R[pharos,check_n]} / ${R[pharos,check_bad]}"
plain "  same through Pharos's Jaeger API" "-" "${R[pharos,check_n]} / ${R[pharos,check_bad_pj]}"
plain "non-200: by ID / Jaeger by ID" "$(J byid,bad) / -" "${R[pharos,byid,bad]} / ${R[pharos,byid_jaeger,bad]}"
plain "non-200: search / Jaeger search" "$(J search,bad) / -" "${R[pharos,search,bad]} / ${R[pharos,search_jaeger,bad]}"
plain "avg answer bytes: by ID / search" "$(J byid,bytes) / $(J search,bytes)" "${R[pharos,byid,bytes]} / ${R[pharos,search,bytes]}"
plain "trace by ID max (ms)" "$(J byid,max)" "${R[pharos,byid,max]}"
plain "machine CPU busy in window (all procs, %)" "$(J machine_busy)" "${R[pharos,machine_busy]}"
plain "  of which other processes (cores)" "$(J other_cores)" "${R[pharos,other_cores]}"
say "shutdown: ${R[jaeger,stop]:-jaeger not run}; ${R[pharos,stop]}"
say ""

PM=$LOGDIR/pharos.metrics.txt
pm() { awk -v m="$1" -v l="${2:-}" '($1==m || index($1, m"{")==1) && index($1, l) {s+=$NF; n++} END{if(n) printf "%.0f", s; else printf "-"}' "$PM"; }
say "## Pharos path (end of settle)"
say "  agent: spans received $(pm pharos_agent_received_spans_total), published $(pm pharos_agent_spans_published_total), dropped $(pm pharos_agent_dropped_spans_total), rejected $(pm pharos_agent_rejected_spans_total)"
say "  aggregator: spans appended $(pm pharos_aggregator_spans_appended_total), invalid messages $(pm pharos_aggregator_invalid_messages_total)"
say "  trace store: stored spans file $(pm pharos_traces_stored_spans 'location="file"') / memory $(pm pharos_traces_stored_spans 'location="memory"'), rejected $(pm pharos_traces_rejected_spans_total), compressed $(pm pharos_traces_stored_compressed_bytes) B of $(pm pharos_traces_stored_uncompressed_bytes) B, parts $(pm pharos_traces_parts)"
say ""
if [[ $SKIP_JAEGER != 1 ]]; then
	JM=$LOGDIR/jaeger.metrics.txt
	jm() { awk -v m="$1" '($1==m || index($1, m"{")==1) {s+=$NF; n++} END{if(n) printf "%.0f", s; else printf "-"}' "$JM"; }
	say "## Jaeger path (end of settle)"
	say "  receiver: accepted $(jm otelcol_receiver_accepted_spans_total), refused $(jm otelcol_receiver_refused_spans_total); exporter: sent $(jm otelcol_exporter_sent_spans_total), failed $(jm otelcol_exporter_send_failed_spans_total)"
	say ""
	# Jaeger is the reference for the Jaeger query API's response shapes.
	say "## Jaeger API response shapes: JSON key paths only in one of them (Jaeger's answer is the reference)"
	for k in trace search services; do
		shape "$LOGDIR/jaeger.jaeger-$k.json" >"$WORK/shape.j.$k"
		shape "$LOGDIR/pharos.jaeger-$k.json" >"$WORK/shape.p.$k"
		only_j=$(comm -23 "$WORK/shape.j.$k" "$WORK/shape.p.$k" | tr '\n' ' ')
		only_p=$(comm -13 "$WORK/shape.j.$k" "$WORK/shape.p.$k" | tr '\n' ' ')
		R[shape,$k]="$(wc -l <"$WORK/shape.j.$k") paths in Jaeger's, $(wc -l <"$WORK/shape.p.$k") in Pharos's"
		say "  $k: ${R[shape,$k]}; only in Jaeger's: ${only_j:-none}; only in Pharos's: ${only_p:-none}"
	done
	say ""
fi
if grep -qE '"level":"(ERROR|WARN)"' "$LOGDIR/pharos.window.log"; then
	say "## Pharos warnings/errors from the load on (count, message)"
	grep -E '"level":"(ERROR|WARN)"' "$LOGDIR/pharos.window.log" | jq -r '"\(.level) \(.msg)" + (if .err then ": \(.err)" else "" end)' 2>/dev/null |
		cut -c1-200 | sort | uniq -c | sort -rn | head -15 | tee -a "$RESULTS"
	say ""
fi

warn=()
for sys in pharos jaeger; do
	[[ $sys == jaeger && $SKIP_JAEGER == 1 ]] && continue
	[[ ${R[$sys,complete]} == yes ]] || warn+=("$sys: not every span was stored (${R[$sys,complete]})")
	[[ ${R[$sys,tg_rc]} == 0 ]] || warn+=("$sys: telemetrygen exited with status ${R[$sys,tg_rc]} (see $LOGDIR/$sys.telemetrygen.log)")
	[[ ${R[$sys,check_bad]} == 0 && ${R[$sys,check_n]} -gt 0 ]] || warn+=("$sys: ${R[$sys,check_bad]} of ${R[$sys,check_n]} checked traces do not have $PER_TRACE spans")
	((${R[$sys,ids]:-0} >= QUERY_RUNS)) || warn+=("$sys: only ${R[$sys,ids]:-0} trace IDs found for the by-ID timing (wanted $QUERY_RUNS)")
	[[ ${R[$sys,byid,bad]} == 0 && ${R[$sys,search,bad]} == 0 ]] || warn+=("$sys: non-200 answers (by ID ${R[$sys,byid,bad]}, search ${R[$sys,search,bad]})")
	awk -v b="${R[$sys,machine_busy]}" 'BEGIN{exit !(b+0 > 90)}' &&
		warn+=("$sys window: machine ${R[$sys,machine_busy]}% busy (other processes ${R[$sys,other_cores]} cores): CPU figures are inflated")
	awk -v s="${R[$sys,secs]}" 'BEGIN{exit !(s+0 < 10)}' &&
		warn+=("$sys window: only ${R[$sys,secs]} s: quantised by the ${POLL}s poll and 10 ms CPU ticks; use a bigger SPANS")
done
[[ ${R[pharos,check_bad_pj]} == 0 ]] || warn+=("pharos: ${R[pharos,check_bad_pj]} checked traces do not have $PER_TRACE spans through /jaeger/api/traces/<id>")
((SPANS >= 1000000)) || warn+=("only $SPANS spans stored: the issue's figures are defined with >= 1M spans")
[[ $SKIP_JAEGER != 1 ]] || warn+=("Jaeger skipped (SKIP_JAEGER=1): no ratios")
if ((${#warn[@]})); then
	say "## WARNING: this run is disturbed or incomplete"
	for w in "${warn[@]}"; do say "  - $w"; done
	say ""
fi
say "load at end: $(uptime | sed 's/^ *//')"
say "logs, progress timelines, /metrics snapshots, du listing, sample answers: $LOGDIR"
log "results: $RESULTS"
