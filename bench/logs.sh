#!/usr/bin/env bash
# bench/logs.sh — log ingestion, files on disk to queryable: Pharos (all-in-one,
# tailing the files: tail → NATS JetStream → aggregator → log store) against
# VictoriaLogs' single-node server fed the same lines through its own
# Loki-compatible push endpoint, one after the other.
#
# Prints lines/s, MB/s, MB/s per core, CPU-seconds per GB, peak RSS, stored
# bytes per input byte and the median latency of a substring filter (and of
# a count of its matches), with ratios Pharos/VictoriaLogs and the goals:
# >= 50 MB/s per core through the tail path, CPU per MB <= 1.5x VictoriaLogs,
# stored bytes per input byte <= 1.0x VictoriaLogs. See bench/README.md.
#
# Parameters (environment):
#   DATA_MB=1024 (MiB of log lines)  FILES=8  SEED=1  NEEDLE_EVERY=100000 (one needle line in this many)
#   QUERY_RUNS=10  PUSH_CONCURRENCY=4  PUSH_BATCH_BYTES=1048576  SETTLE=10 (s after ingestion, before disk and CPU-with-settle)
#   IDLE=10 (s of idle CPU measured before each ingestion)  INGEST_TIMEOUT=1800 (s)  STALL_TIMEOUT=180 (s without progress)  POLL=0.5 (s)
#   SLICE_LINES=20000 (lines per slice of Pharos's count of all lines)  FULL_COUNT_MAX_LINES=700000 (above: no single-query count on Pharos)
#   VLOGS_BIN= (a victoria-logs binary; default: go install …/victoria-logs@v1.52.1 into ~/.cache/pharos-bench/)
#   PROFILE=0 (1 = Go CPU profile of Pharos for PROFILE_SECONDS=20 from the rename on; adds a little CPU)
#   PHAROS_FLAGS= AGENT_FLAGS= (the tail-path agent) VLOGS_FLAGS= (extra flags, word-split)  KEEP=0 (1 = keep the temp dir)  RESULTS_DIR=bench/results
#   LOAD_MAX= (if set: before each system, wait up to LOAD_WAIT=900 s for the 1-min load average to drop to it)
#   ROUNDS=5 (ingestions per system, alternating which goes first; CPU and RSS are the medians, queries run in round 1)
set -euo pipefail

DATA_MB=${DATA_MB:-1024}
FILES=${FILES:-8}
SEED=${SEED:-1}
NEEDLE_EVERY=${NEEDLE_EVERY:-100000}
QUERY_RUNS=${QUERY_RUNS:-10}
PUSH_CONCURRENCY=${PUSH_CONCURRENCY:-4}
PUSH_BATCH_BYTES=${PUSH_BATCH_BYTES:-1048576}
SETTLE=${SETTLE:-10}
IDLE=${IDLE:-10}
INGEST_TIMEOUT=${INGEST_TIMEOUT:-1800}
STALL_TIMEOUT=${STALL_TIMEOUT:-180}
POLL=${POLL:-0.5}
SLICE_LINES=${SLICE_LINES:-20000}
FULL_COUNT_MAX_LINES=${FULL_COUNT_MAX_LINES:-700000}
VLOGS_VERSION=v1.52.1
VLOGS_BIN=${VLOGS_BIN:-}
PHAROS_FLAGS=${PHAROS_FLAGS:-}
AGENT_FLAGS=${AGENT_FLAGS:-}
VLOGS_FLAGS=${VLOGS_FLAGS:-}
KEEP=${KEEP:-0}
PROFILE=${PROFILE:-0}
PROFILE_SECONDS=${PROFILE_SECONDS:-20}
LOAD_MAX=${LOAD_MAX:-}
LOAD_WAIT=${LOAD_WAIT:-900}
ROUNDS=${ROUNDS:-5}
NEEDLE=NEEDLE-qzxj7

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RESULTS_DIR=${RESULTS_DIR:-$ROOT/bench/results}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$RESULTS_DIR"
RESULTS=$RESULTS_DIR/logs-$STAMP.txt
LOGDIR=$RESULTS_DIR/logs-$STAMP.logs
mkdir -p "$LOGDIR"
WORK=$(mktemp -d /tmp/pharos-bench-logs.XXXXXX)
CLK_TCK=$(getconf CLK_TCK)
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/pharos-bench/victoria-logs-$VLOGS_VERSION

PIDS=()
HELPER_PID= # a process feeding the system in ingest (the pusher); HELPER_RC its exit status once reaped
HELPER_RC=
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

now_rfc3339() { date -u +%Y-%m-%dT%H:%M:%S.%NZ; }
wait_ready() {
	local addr=$1 path=$2 pid=$3
	for _ in $(seq 240); do
		kill -0 "$pid" 2>/dev/null || return 1
		curl -fsS --max-time 2 -o /dev/null "http://$addr$path" 2>/dev/null && return 0
		sleep 0.5
	done
	return 1
}
# start_system SYS ADDR PATH CMD...: starts CMD in the background (output
# in $LOGDIR/SYS.log and SYS.stdout.log) and waits until http://ADDR/PATH
# answers; sets STARTED_PID.
start_system() {
	local sys=$1 addr=$2 path=$3
	shift 3
	log "[$sys] starting: $*"
	"$@" >"$LOGDIR/$sys.stdout.log" 2>"$LOGDIR/$sys.log" &
	STARTED_PID=$!
	PIDS+=("$STARTED_PID")
	wait_ready "$addr" "$path" "$STARTED_PID" || { tail -20 "$LOGDIR/$sys.log" >&2; die "[$sys] not ready"; }
}
# idle_cores PID: the cores PID uses over IDLE seconds.
idle_cores() {
	local c
	c=$(cpu_ticks "$1")
	sleep "$IDLE"
	calc '%.3f' "($(cpu_ticks "$1") - $c) / $CLK_TCK / $IDLE"
}
wait_load() {
	local sys=$1 waited=0
	[[ -n $LOAD_MAX ]] || return 0
	while awk -v l="$(cut -d' ' -f1 /proc/loadavg)" -v m="$LOAD_MAX" 'BEGIN{exit !(l+0 > m+0)}' && ((waited < LOAD_WAIT)); do
		((waited % 60 == 0)) && log "[$sys] load $(cut -d' ' -f1 /proc/loadavg) > LOAD_MAX=$LOAD_MAX: waiting (up to ${LOAD_WAIT}s)"
		sleep 5; waited=$((waited + 5))
	done
}

# The queries. Both are a substring match on the raw line: Pharos's `|=`
# is pushed down to its log store as `_msg:*"…"*`, VictoriaLogs' substring
# filter, so both run the same kind of scan.
PHAROS_FILTER="{job=\"bench\"} |= \"$NEEDLE\""
PHAROS_COUNT="sum(count_over_time({job=\"bench\"} |= \"$NEEDLE\" [24h]))"
PHAROS_ALL="sum(count_over_time({job=\"bench\"}[24h]))"
VLOGS_FILTER="_stream:{job=\"bench\"} _msg:*\"$NEEDLE\"*"
VLOGS_COUNT="$VLOGS_FILTER | stats count() as n"
VLOGS_ALL="_stream:{job=\"bench\"} | stats count() as n"

# q_pharos KIND START: one request; prints "<seconds> <http code> <result>"
# where result is the number of entries returned (filter) or the count.
q_pharos() {
	local kind=$1 start=$2 body tt code
	if [[ $kind == filter ]]; then
		body=$(curl -sS --max-time 900 -w '\n%{time_total} %{http_code}' -G "http://$PHAROS_ADDR/loki/api/v1/query_range" \
			--data-urlencode "query=$PHAROS_FILTER" --data-urlencode "start=$start" --data-urlencode "end=$(now_rfc3339)" \
			--data-urlencode limit=1000 2>&1 || true)
		read -r tt code <<<"$(tail -1 <<<"$body")"
		echo "$tt $code $(sed '$d' <<<"$body" | jq -r '[.data.result[].values | length] | add // 0' 2>/dev/null || echo error)"
	else
		local q=$PHAROS_COUNT
		[[ $kind == all ]] && q=$PHAROS_ALL
		body=$(curl -sS --max-time 900 -w '\n%{time_total} %{http_code}' -G "http://$PHAROS_ADDR/loki/api/v1/query" \
			--data-urlencode "query=$q" --data-urlencode "time=$(now_rfc3339)" 2>&1 || true)
		read -r tt code <<<"$(tail -1 <<<"$body")"
		echo "$tt $code $(sed '$d' <<<"$body" | jq -r '.data.result[0].value[1] // "0"' 2>/dev/null || echo error)"
	fi
}
q_vlogs() {
	local kind=$1 start=$2 body tt code q
	case $kind in
	filter) q=$VLOGS_FILTER ;;
	count) q=$VLOGS_COUNT ;;
	all) q=$VLOGS_ALL ;;
	esac
	body=$(curl -sS --max-time 900 -w '\n%{time_total} %{http_code}' "http://$VLOGS_ADDR/select/logsql/query" \
		--data-urlencode "query=$q" --data-urlencode "start=$start" --data-urlencode "end=$(now_rfc3339)" \
		--data-urlencode limit=1000 2>&1 || true)
	read -r tt code <<<"$(tail -1 <<<"$body")"
	if [[ $kind == filter ]]; then
		echo "$tt $code $(sed '$d' <<<"$body" | grep -c '"_msg"' || true)"
	else
		echo "$tt $code $(sed '$d' <<<"$body" | jq -r '.n' 2>/dev/null | head -1 || echo error)"
	fi
}

# ---------------------------------------------------------------------------
# Build and prerequisites.

command -v curl >/dev/null || die "curl is needed"
if ! command -v jq >/dev/null; then
	log "installing jq (apt-get)"
	SUDO=; [[ $(id -u) == 0 ]] || SUDO=sudo
	$SUDO apt-get install -y --no-install-recommends jq >"$LOGDIR/apt.log" 2>&1 ||
		{ $SUDO apt-get update >>"$LOGDIR/apt.log" 2>&1 && $SUDO apt-get install -y --no-install-recommends jq >>"$LOGDIR/apt.log" 2>&1; } ||
		die "apt-get install jq failed (see $LOGDIR/apt.log)"
fi

log "building pharos and loggen into $WORK"
(cd "$ROOT" && go build -o "$WORK/pharos" ./cmd/pharos && go build -o "$WORK/loggen" ./bench/loggen) || die "build failed"

if [[ -n $VLOGS_BIN ]]; then
	[[ -x $VLOGS_BIN ]] || die "VLOGS_BIN=$VLOGS_BIN is not an executable"
elif [[ -x $CACHE/victoria-logs ]]; then
	VLOGS_BIN=$CACHE/victoria-logs
else
	log "go install github.com/VictoriaMetrics/VictoriaLogs/app/victoria-logs@$VLOGS_VERSION into $CACHE (once)"
	mkdir -p "$CACHE"
	(cd "$WORK" && GOBIN=$CACHE GOFLAGS=-buildvcs=false go install "github.com/VictoriaMetrics/VictoriaLogs/app/victoria-logs@$VLOGS_VERSION") \
		>"$LOGDIR/vlogs-install.log" 2>&1 || die "go install victoria-logs failed (see $LOGDIR/vlogs-install.log)"
	VLOGS_BIN=$CACHE/victoria-logs
fi

PHAROS_VERSION=$("$WORK/pharos" -version 2>&1 | head -1 || true)
GIT_REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
GIT_DIRTY=$(git -C "$ROOT" status --porcelain 2>/dev/null | wc -l)
VLOGS_DESC="$(basename "$VLOGS_BIN") from $VLOGS_BIN"
[[ $VLOGS_BIN == "$CACHE/victoria-logs" ]] && VLOGS_DESC="VictoriaLogs $VLOGS_VERSION (go install, $VLOGS_BIN)"

# Ports: loopback only, each system on its own free ports.
mapfile -t PORTS < <("$WORK/loggen" free-ports 4)
PHAROS_ADDR=127.0.0.1:${PORTS[0]}
NATS_ADDR=127.0.0.1:${PORTS[1]}
VLOGS_ADDR=127.0.0.1:${PORTS[2]}
PPROF_ADDR=127.0.0.1:${PORTS[3]}

# ---------------------------------------------------------------------------
# Data: generated before either system starts (not in any window), into a
# directory next to the tailed one, so that a rename makes every file appear
# at once. Both systems then read the same files from the page cache.

log "generating $DATA_MB MiB in $FILES files (seed $SEED)"
"$WORK/loggen" gen -dir "$WORK/gen" -mb "$DATA_MB" -files "$FILES" -seed "$SEED" \
	-needle "$NEEDLE" -needle-every "$NEEDLE_EVERY" >"$LOGDIR/gen.json" 2>"$LOGDIR/gen.log" ||
	{ cat "$LOGDIR/gen.log" >&2; die "loggen gen failed"; }
LINES=$(jq -r .lines "$LOGDIR/gen.json")
BYTES=$(jq -r .bytes "$LOGDIR/gen.json")
NEEDLES=$(jq -r .needle_lines "$LOGDIR/gen.json")
GEN_SECS=$(jq -r .seconds "$LOGDIR/gen.json")
MB=$(calc '%.3f' "$BYTES / 1e6")
ZSTD_RATIO=
if command -v zstd >/dev/null; then
	ZSTD_RATIO=$(calc '%.2f' "$BYTES / $(cat "$WORK"/gen/*.log | zstd -3 -T0 -q -c | wc -c)")
fi
mkdir -p "$WORK/tail"
log "generated $LINES lines, $BYTES bytes, $NEEDLES needle lines in ${GEN_SECS}s"

: >"$RESULTS"
say "# Pharos vs VictoriaLogs — log ingestion, files to queryable ($STAMP)"
say ""
say "machine:       $(nproc) CPUs, $(awk '/MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
say "load:          $(uptime | sed 's/^ *//')   (at start; other users of the machine build and test too)"
say "victorialogs:  $VLOGS_DESC"
say "pharos:        ${PHAROS_VERSION:-?} — built from $ROOT at $GIT_REV, $GIT_DIRTY uncommitted/untracked paths in the work tree"
say "data:          $FILES files, $LINES lines, $BYTES bytes ($MB MB; avg $(calc '%.0f' "$BYTES / $LINES") B/line) from loggen (seed $SEED)${ZSTD_RATIO:+, zstd -3 ratio $ZSTD_RATIO}"
say "               $NEEDLES lines carry \"$NEEDLE\" (1 in $NEEDLE_EVERY per file)"
say "pharos path:   tail ($WORK/tail/*.log, format raw) → embedded NATS JetStream (fsync always) → aggregator → log store"
say "vlogs path:    loggen push → /insert/loki/api/v1/push (snappy protobuf, ~$PUSH_BATCH_BYTES B/request, $PUSH_CONCURRENCY in flight, JSON parsing of lines off)"
say "               streams on both: {filename=<path>, job=\"bench\"}; MB = 10^6 bytes"
say ""

declare -A R

# ingest SYS PID ADDR METRIC LABELMATCH START_CMD...: measures from just
# before START_CMD runs until ADDR's METRIC reaches LINES. START_CMD makes
# the lines available (a rename, or starting the pusher in the background).
# Sets R[SYS,*].
ingest() {
	local sys=$1 pid=$2 addr=$3 m=$4 lm=$5
	shift 5
	local c0 t0 mb0 mt0 t1 c1 mb1 mt1 v last_v=-1 last_change stall=0 now timeout_at
	read -r mb0 mt0 < <(machine_busy)
	c0=$(cpu_ticks "$pid"); t0=$(date +%s.%N)
	"$@"
	last_change=$t0
	timeout_at=$(calc '%.3f' "$t0 + $INGEST_TIMEOUT")
	: >"$LOGDIR/$sys.progress.tsv"
	R[$sys,complete]=yes
	while :; do
		kill -0 "$pid" 2>/dev/null || die "[$sys] process exited during ingestion (see $LOGDIR/$sys.log)"
		v=$(metric "$addr" "$m" "$lm")
		now=$(date +%s.%N)
		printf '%s\t%s\t%s\n' "$(calc '%.2f' "$now - $t0")" "${v:-}" "$(calc '%.2f' "($(cpu_ticks "$pid") - $c0) / $CLK_TCK")" >>"$LOGDIR/$sys.progress.tsv"
		if [[ -n $v ]] && awk -v v="$v" -v n="$LINES" 'BEGIN{exit !(v+0 >= n+0)}'; then
			c1=$(cpu_ticks "$pid"); t1=$now
			break
		fi
		if [[ ${v:-0} != "$last_v" ]]; then
			stall=$(calc '%.1f' "($stall > $now - $last_change) ? $stall : ($now - $last_change)")
			last_v=${v:-0}; last_change=$now
		elif awk -v a="$now" -v b="$last_change" -v s="$STALL_TIMEOUT" 'BEGIN{exit !(a-b >= s)}'; then
			log "[$sys] STALL_TIMEOUT: no progress for ${STALL_TIMEOUT}s at $v of $LINES lines"
			c1=$(cpu_ticks "$pid"); t1=$now
			R[$sys,complete]="NO ($v of $LINES, stalled)"
			break
		elif awk -v a="$now" -v b="$last_change" 'BEGIN{exit !(a-b >= 30)}' && ! [[ -e $WORK/$sys.stall-logged ]]; then
			log "[$sys] no progress for 30 s at $v of $LINES"
			touch "$WORK/$sys.stall-logged"
		fi
		# A helper (the pusher) that failed will not bring the rest.
		if [[ -n $HELPER_PID && -z $HELPER_RC ]] && { [[ ! -e /proc/$HELPER_PID ]] || [[ $(awk '{print $3}' "/proc/$HELPER_PID/stat" 2>/dev/null) == Z ]]; }; then
			HELPER_RC=0
			wait "$HELPER_PID" || HELPER_RC=$?
			if [[ $HELPER_RC != 0 ]]; then
				log "[$sys] the pusher failed (status $HELPER_RC)"
				c1=$(cpu_ticks "$pid"); t1=$now
				R[$sys,complete]="NO ($v of $LINES, the pusher failed)"
				break
			fi
		fi
		if awk -v a="$now" -v b="$timeout_at" 'BEGIN{exit !(a >= b)}'; then
			log "[$sys] INGEST_TIMEOUT: $v of $LINES lines stored after ${INGEST_TIMEOUT}s"
			c1=$(cpu_ticks "$pid"); t1=$now
			R[$sys,complete]="NO ($v of $LINES)"
			break
		fi
		sleep "$POLL"
	done
	stall=$(calc '%.1f' "($stall > $t1 - $last_change) ? $stall : ($t1 - $last_change)")
	read -r mb1 mt1 < <(machine_busy)
	local secs cpu
	secs=$(calc '%.3f' "$t1 - $t0")
	cpu=$(calc '%.3f' "($c1 - $c0) / $CLK_TCK")
	R[$sys,t0]=$t0
	R[$sys,t1]=$t1
	R[$sys,c0]=$c0
	R[$sys,stored]=$v
	R[$sys,secs]=$secs
	R[$sys,cpu]=$cpu
	R[$sys,stall]=$stall
	R[$sys,cores]=$(calc '%.2f' "$cpu / $secs")
	R[$sys,lps]=$(calc '%.0f' "$LINES / $secs")
	R[$sys,mbps]=$(calc '%.1f' "$BYTES / 1e6 / $secs")
	R[$sys,mbps_core]=$(calc '%.1f' "$BYTES / 1e6 / $cpu")
	R[$sys,cpu_gb]=$(calc '%.2f' "$cpu / ($BYTES / 1e9)")
	R[$sys,cpu_mb]=$(calc '%.5f' "$cpu / ($BYTES / 1e6)")
	R[$sys,machine_busy]=$(calc '%.0f' "100 * ($mb1 - $mb0) / ($mt1 - $mt0)")
	R[$sys,busy_ticks]=$(calc '%.0f' "$mb1 - $mb0 - ($c1 - $c0)") # machine busy minus the system's own CPU
	R[$sys,total_ticks]=$(calc '%.0f' "$mt1 - $mt0")
	log "[$sys] $v of $LINES lines stored in ${secs}s, ${cpu} CPU-s (${R[$sys,mbps_core]} MB/s per core)"
}

# settle SYS PID ADDR INMEM_METRIC INMEM_MATCH: waits SETTLE s, then until
# no in-memory part is left (at most 60 s more), then records the CPU since
# the start of ingestion and the peak RSS.
settle() {
	local sys=$1 pid=$2 addr=$3 m=$4 lm=$5 v
	sleep "$SETTLE"
	for _ in $(seq 120); do
		v=$(metric "$addr" "$m" "$lm")
		[[ ${v:-0} == 0 ]] && break
		sleep 0.5
	done
	R[$sys,inmem_left]=${v:-?}
	R[$sys,settle_secs]=$(calc '%.1f' "$(date +%s.%N) - ${R[$sys,t0]}")
	R[$sys,cpu_settle]=$(calc '%.3f' "($(cpu_ticks "$pid") - ${R[$sys,c0]}) / $CLK_TCK")
	R[$sys,cpu_gb_settle]=$(calc '%.2f' "${R[$sys,cpu_settle]} / ($BYTES / 1e9)")
	R[$sys,hwm]=$(hwm_kb "$pid")
}

# disk SYS DIR: apparent and allocated bytes of the log store.
disk() {
	local sys=$1 dir=$2
	R[$sys,disk]=$(du -sb "$dir" | cut -f1)
	R[$sys,disk_alloc]=$(du -sB1 "$dir" | cut -f1)
	R[$sys,disk_ratio]=$(calc '%.4f' "${R[$sys,disk]} / $BYTES")
	R[$sys,disk_alloc_ratio]=$(calc '%.4f' "${R[$sys,disk_alloc]} / $BYTES")
	(cd "$dir" && du -ab . | sort -k2) >"$LOGDIR/$sys.du.txt" 2>/dev/null || true
}

# queries SYS FN: the filter and the count QUERY_RUNS times each, after one
# run whose answer is checked (not timed).
queries() {
	local sys=$1 fn=$2 start kind tt code n
	start=$(date -u -d "@$(calc '%.0f' "${R[$sys,t0]} - 60")" +%Y-%m-%dT%H:%M:%SZ)
	for kind in filter count; do
		read -r tt code n < <($fn "$kind" "$start")
		R[$sys,$kind,n]=$n
		R[$sys,$kind,code]=$code
		[[ $code == 200 ]] || log "[$sys] $kind query: HTTP $code"
		: >"$WORK/$sys.$kind"
		for _ in $(seq "$QUERY_RUNS"); do
			read -r tt code n < <($fn "$kind" "$start")
			[[ $code == 200 ]] || R[$sys,$kind,code]+=" $code"
			echo "$tt" >>"$WORK/$sys.$kind"
		done
		R[$sys,$kind,ms]=$(calc '%.1f' "$(median <"$WORK/$sys.$kind") * 1000")
		R[$sys,$kind,max]=$(calc '%.1f' "$(sort -g "$WORK/$sys.$kind" | tail -1) * 1000")
		log "[$sys] $kind: ${R[$sys,$kind,n]} (HTTP ${R[$sys,$kind,code]}), median ${R[$sys,$kind,ms]} ms"
	done
}

# confirm SYS FN: the count of every line in one query, retried for up
# to 60 s until it equals LINES (data becomes searchable within ~1 s).
confirm() {
	local sys=$1 fn=$2 start tt code n until
	start=$(date -u -d "@$(calc '%.0f' "${R[$sys,t0]} - 60")" +%Y-%m-%dT%H:%M:%SZ)
	until=$(($(date +%s) + 60))
	while :; do
		read -r tt code n < <($fn all "$start")
		[[ $code == 200 && $n == "$LINES" ]] && break
		(($(date +%s) < until)) || break
		log "[$sys] count of all lines: $n (HTTP $code), expected $LINES; retrying"
		sleep 5
	done
	R[$sys,all,n]=$n
	R[$sys,all,code]=$code
	R[$sys,all,ms]=$(calc '%.0f' "$tt * 1000")
	log "[$sys] count of all lines through the query API, one query: $n (HTTP $code) in $(calc '%.2f' "$tt") s"
}

# confirm_sliced: Pharos's count of every line through the Loki API as
# instant count_over_time queries over consecutive time slices of about
# SLICE_LINES lines each. One query over everything would page through the
# range 10,000 entries at a time, each page scanning all of the range that
# is left (quadratic in the line count: ~40 s for 600k lines on this
# machine, far past the timeout at 1 GiB); slices keep it linear.
confirm_sliced() {
	local t0ms endms hi step b lo e i tt code n body sum=0 secs=0 bad=0 bounds
	t0ms=$(calc '%.0f' "${R[pharos,t0]} * 1000")
	endms=$(calc '%.0f' "${R[pharos,t1]} * 1000 + 5000")
	step=$(calc '%.0f' "$SLICE_LINES * 1000 / ${R[pharos,lps]}")
	((step >= 200)) || step=200
	((step <= 60000)) || step=60000
	bounds=($((t0ms - 60000)) "$t0ms")
	b=$t0ms
	while ((b + step < endms)); do b=$((b + step)); bounds+=("$b"); done
	hi=$(date +%s%3N)
	((hi > b)) || hi=$((b + 1))
	bounds+=("$hi")
	for ((i = 1; i < ${#bounds[@]}; i++)); do
		lo=${bounds[i - 1]}; e=${bounds[i]}
		body=$(curl -sS --max-time 900 -w '\n%{time_total} %{http_code}' -G "http://$PHAROS_ADDR/loki/api/v1/query" \
			--data-urlencode "query=sum(count_over_time({job=\"bench\"}[$((e - lo))ms]))" --data-urlencode "time=${e}000000" 2>&1 || true)
		read -r tt code <<<"$(tail -1 <<<"$body")"
		n=$(sed '$d' <<<"$body" | jq -r '.data.result[0].value[1] // "0"' 2>/dev/null || echo error)
		[[ $code == 200 && $n =~ ^[0-9]+$ ]] || { bad=$((bad + 1)); n=0; }
		sum=$((sum + n))
		secs=$(calc '%.3f' "$secs + ${tt:-0}")
	done
	R[pharos,sliced,n]=$sum
	R[pharos,sliced,queries]=$((${#bounds[@]} - 1))
	R[pharos,sliced,bad]=$bad
	R[pharos,sliced,secs]=$secs
	log "[pharos] count of all lines through the Loki API in ${R[pharos,sliced,queries]} slices: $sum ($bad failed) in ${secs} s"
}

# ---------------------------------------------------------------------------
# Pharos: the all-in-one tails $WORK/tail; the files are renamed into it
# once it is ready.

# start_pharos SYS DATADIR [FLAG...]: starts the all-in-one with an empty
# $WORK/tail (the files wait in $WORK/gen) and measures its idle CPU; sets
# PHAROS_PID.
start_pharos() {
	local sys=$1 dir=$2
	shift 2
	local cmd=("$WORK/pharos" -data.dir="$dir" -http.listen-address="$PHAROS_ADDR"
		-nats.embedded.listen-address="$NATS_ADDR" -otlp.grpc.listen-address=127.0.0.1:0 -otlp.http.listen-address=127.0.0.1:0
		-agent.tail.include="$WORK/tail/*.log" -agent.tail.static-labels=job=bench -agent.tail.format=raw
		-agent.tail.kubernetes-labels=false -query.logql.timeout=10m "$@")
	# shellcheck disable=SC2206 # word splitting wanted
	cmd+=($PHAROS_FLAGS)
	wait_load "$sys"
	start_system "$sys" "$PHAROS_ADDR" /ready "${cmd[@]}"
	PHAROS_PID=$STARTED_PID
	R[$sys,idle]=$(idle_cores "$PHAROS_PID")
	log "[$sys] ready (pid $PHAROS_PID), idle ${R[$sys,idle]} cores; renaming the files into $WORK/tail"
}
# ingest_pharos SYS: renames the files into $WORK/tail, then ingest and settle.
ingest_pharos() {
	ingest "$1" "$PHAROS_PID" "$PHAROS_ADDR" pharos_aggregator_log_entries_appended_total "" \
		bash -c 'mv "$1"/*.log "$2"/' _ "$WORK/gen" "$WORK/tail"
	R[$1,helper_cpu]=0
	settle "$1" "$PHAROS_PID" "$PHAROS_ADDR" pharos_logs_parts 'type="inmemory"'
}

PROFILE_FLAGS=()
[[ $PROFILE == 1 ]] && PROFILE_FLAGS=(-http.admin-listen-address="$PPROF_ADDR")
start_pharos pharos "$WORK/pharos-data" "${PROFILE_FLAGS[@]}"
L0=$(wc -l <"$LOGDIR/pharos.log")
if [[ $PROFILE == 1 ]]; then
	curl -sS --max-time $((PROFILE_SECONDS + 60)) -o "$LOGDIR/pharos.cpu.pprof" \
		"http://$PPROF_ADDR/debug/pprof/profile?seconds=$PROFILE_SECONDS" 2>"$LOGDIR/pprof.log" &
	PROF_PID=$!
	PIDS+=("$PROF_PID")
fi
ingest_pharos pharos
disk pharos "$WORK/pharos-data/logs"
R[pharos,nats]=$(du -sb "$WORK/pharos-data/nats" | cut -f1)
R[pharos,datadir]=$(du -sb "$WORK/pharos-data" | cut -f1)
curl -fsS --max-time 20 "http://$PHAROS_ADDR/metrics" >"$LOGDIR/pharos.metrics.txt" 2>/dev/null || true
if [[ $PROFILE == 1 ]]; then
	wait "$PROF_PID" || log "[pharos] profile download failed: $(cat "$LOGDIR/pprof.log")"
	go tool pprof -top -nodecount=30 "$WORK/pharos" "$LOGDIR/pharos.cpu.pprof" >"$LOGDIR/pharos.pprof-flat.txt" 2>/dev/null || true
	go tool pprof -top -cum -nodecount=60 "$WORK/pharos" "$LOGDIR/pharos.cpu.pprof" >"$LOGDIR/pharos.pprof-cum.txt" 2>/dev/null || true
fi
confirm_sliced
if ((LINES <= FULL_COUNT_MAX_LINES)); then
	confirm pharos q_pharos
else
	R[pharos,all,n]="skipped"; R[pharos,all,ms]="skipped"
	log "[pharos] one query counting all lines skipped: $LINES lines > FULL_COUNT_MAX_LINES=$FULL_COUNT_MAX_LINES"
fi
queries pharos q_pharos
R[pharos,hwm_end]=$(hwm_kb "$PHAROS_PID")
sed -n "$((L0 + 1)),\$p" "$LOGDIR/pharos.log" >"$LOGDIR/pharos.window.log"
stop_pid "$PHAROS_PID" pharos
R[pharos,stop]=$STOP_MSG
log "[pharos] $STOP_MSG"

# ---------------------------------------------------------------------------
# VictoriaLogs: the pusher replays the same files (their paths in
# $WORK/tail, as Pharos saw them).

# start_vlogs SYS DATADIR: starts VictoriaLogs and measures its idle CPU;
# sets VLOGS_PID.
start_vlogs() {
	local sys=$1 dir=$2
	local cmd=("$VLOGS_BIN" -storageDataPath="$dir" -httpListenAddr="$VLOGS_ADDR" -retentionPeriod=30d
		-loki.disableMessageParsing)
	# shellcheck disable=SC2206 # word splitting wanted
	cmd+=($VLOGS_FLAGS)
	wait_load "$sys"
	mkdir -p "$dir"
	start_system "$sys" "$VLOGS_ADDR" /health "${cmd[@]}"
	VLOGS_PID=$STARTED_PID
	R[$sys,idle]=$(idle_cores "$VLOGS_PID")
	log "[$sys] ready (pid $VLOGS_PID), idle ${R[$sys,idle]} cores; pushing"
}
# ingest_vlogs SYS: runs the pusher over the files in $WORK/tail, then
# ingest and settle; sets PUSH_RC.
ingest_vlogs() {
	local sys=$1
	start_push() {
		"$WORK/loggen" push -url "http://$VLOGS_ADDR/insert/loki/api/v1/push" -labels job=bench \
			-concurrency "$PUSH_CONCURRENCY" -batch-bytes "$PUSH_BATCH_BYTES" "$WORK"/tail/*.log \
			>"$LOGDIR/$sys.push.json" 2>"$LOGDIR/$sys.push.log" &
		HELPER_PID=$!
		PIDS+=("$HELPER_PID")
	}
	HELPER_RC=
	ingest "$sys" "$VLOGS_PID" "$VLOGS_ADDR" vl_rows_ingested_total "" start_push
	if [[ -z $HELPER_RC ]]; then
		HELPER_RC=0
		wait "$HELPER_PID" || HELPER_RC=$?
	fi
	PUSH_RC=$HELPER_RC
	[[ $PUSH_RC == 0 ]] || log "[$sys] the pusher failed (status $PUSH_RC): $(tail -3 "$LOGDIR/$sys.push.log")"
	R[$sys,pusher]=$(jq -r '"\(.seconds) s, \(.requests) requests, \(.retries) retries, \(.mb_per_sec) MB/s, \(.cpu_seconds) CPU-s"' "$LOGDIR/$sys.push.json" 2>/dev/null || echo "failed")
	R[$sys,helper_cpu]=$(jq -r '.cpu_seconds // 0' "$LOGDIR/$sys.push.json" 2>/dev/null || echo 0)
	settle "$sys" "$VLOGS_PID" "$VLOGS_ADDR" vl_storage_parts 'type="storage/inmemory"'
}

start_vlogs vlogs "$WORK/vlogs-data"
ingest_vlogs vlogs
disk vlogs "$WORK/vlogs-data"
curl -fsS --max-time 20 "http://$VLOGS_ADDR/metrics" >"$LOGDIR/vlogs.metrics.txt" 2>/dev/null || true
# Rows reach queries within about a second; a forced flush makes it now.
curl -fsS --max-time 60 -o /dev/null "http://$VLOGS_ADDR/internal/force_flush" || true
confirm vlogs q_vlogs
queries vlogs q_vlogs
R[vlogs,hwm_end]=$(hwm_kb "$VLOGS_PID")
stop_pid "$VLOGS_PID" vlogs
R[vlogs,stop]=$STOP_MSG
log "[vlogs] $STOP_MSG"

# ---------------------------------------------------------------------------
# The tail path alone, as Vector's file→TCP figure measures it: a pharos
# agent process (-target=agent) tails the same files (hard links, renamed
# into a directory of its own once it is ready) and publishes them to a
# separate pharos -target=nats process, where they stay (nothing
# consumes). Measured: the agent's CPU until JetStream has acknowledged
# every line; the NATS server's CPU is reported beside it.

wait_load tailpath
mkdir -p "$WORK/gen2" "$WORK/tail2"
ln "$WORK"/tail/*.log "$WORK/gen2/"
mapfile -t TPORTS < <("$WORK/loggen" free-ports 3)
TNATS_ADDR=127.0.0.1:${TPORTS[0]}
TNATS_HTTP=127.0.0.1:${TPORTS[1]}
AGENT_ADDR=127.0.0.1:${TPORTS[2]}
TNATS_CMD=("$WORK/pharos" -target=nats -data.dir="$WORK/tail-nats" -http.listen-address="$TNATS_HTTP"
	-nats.embedded.listen-address="$TNATS_ADDR")
start_system tailpath-nats "$TNATS_HTTP" /ready "${TNATS_CMD[@]}"
TNATS_PID=$STARTED_PID
AGENT_CMD=("$WORK/pharos" -target=agent -data.dir="$WORK/tail-agent" -http.listen-address="$AGENT_ADDR"
	-nats.url="nats://$TNATS_ADDR" -otlp.grpc.listen-address=127.0.0.1:0 -otlp.http.listen-address=127.0.0.1:0
	-agent.tail.include="$WORK/tail2/*.log" -agent.tail.static-labels=job=bench -agent.tail.format=raw
	-agent.tail.kubernetes-labels=false)
# shellcheck disable=SC2206 # word splitting wanted
AGENT_CMD+=($AGENT_FLAGS)
start_system tailpath-agent "$AGENT_ADDR" /ready "${AGENT_CMD[@]}"
AGENT_PID=$STARTED_PID
R[tailpath,idle]=$(idle_cores "$AGENT_PID")
log "[tailpath] ready (agent pid $AGENT_PID, NATS pid $TNATS_PID), agent idle ${R[tailpath,idle]} cores; renaming the files into $WORK/tail2"
tn0=$(cpu_ticks "$TNATS_PID")
ingest tailpath "$AGENT_PID" "$AGENT_ADDR" pharos_agent_log_entries_published_total "" \
	bash -c 'mv "$1"/*.log "$2"/' _ "$WORK/gen2" "$WORK/tail2"
R[tailpath,nats_cpu]=$(calc '%.3f' "($(cpu_ticks "$TNATS_PID") - $tn0) / $CLK_TCK")
R[tailpath,nats_mbps_core]=$(calc '%.1f' "$BYTES / 1e6 / (${R[tailpath,cpu]} + ${R[tailpath,nats_cpu]})")
R[tailpath,hwm]=$(hwm_kb "$AGENT_PID")
curl -fsS --max-time 20 "http://$AGENT_ADDR/metrics" >"$LOGDIR/tailpath-agent.metrics.txt" 2>/dev/null || true
stop_pid "$AGENT_PID" "tail-path agent"
R[tailpath,stop]=$STOP_MSG
stop_pid "$TNATS_PID" "tail-path NATS"
R[tailpath,stop]+="; $STOP_MSG"
log "[tailpath] ${R[tailpath,stop]}"

# ---------------------------------------------------------------------------
# More rounds of ingestion alone (no queries), alternating which system goes
# first, each on a fresh data dir: the CPU figures of one run move by up to
# a quarter on this shared machine (VictoriaLogs's most), so the goal is
# judged on the medians of ROUNDS runs per system.

PUSH_FAILS=0
[[ $PUSH_RC == 0 ]] || PUSH_FAILS=1
round_pharos() {
	local sys=pharos.r$1
	mv "$WORK"/tail/*.log "$WORK/gen/"
	start_pharos "$sys" "$WORK/pharos-data.r$1"
	ingest_pharos "$sys"
	stop_pid "$PHAROS_PID" "$sys"
	log "[$sys] $STOP_MSG"
	rm -rf "$WORK/pharos-data.r$1"
}
round_vlogs() {
	local sys=vlogs.r$1
	start_vlogs "$sys" "$WORK/vlogs-data.r$1"
	ingest_vlogs "$sys"
	[[ $PUSH_RC == 0 ]] || PUSH_FAILS=$((PUSH_FAILS + 1))
	stop_pid "$VLOGS_PID" "$sys"
	log "[$sys] $STOP_MSG"
	rm -rf "$WORK/vlogs-data.r$1"
}
R[pharos.r1,cpu_gb]=${R[pharos,cpu_gb]}; R[pharos.r1,cpu_gb_settle]=${R[pharos,cpu_gb_settle]}; R[pharos.r1,hwm]=${R[pharos,hwm]}; R[pharos.r1,complete]=${R[pharos,complete]}
R[vlogs.r1,cpu_gb]=${R[vlogs,cpu_gb]}; R[vlogs.r1,cpu_gb_settle]=${R[vlogs,cpu_gb_settle]}; R[vlogs.r1,hwm]=${R[vlogs,hwm]}; R[vlogs.r1,complete]=${R[vlogs,complete]}
for ((r = 2; r <= ROUNDS; r++)); do
	log "round $r of $ROUNDS"
	if ((r % 2 == 0)); then round_vlogs "$r"; round_pharos "$r"; else round_pharos "$r"; round_vlogs "$r"; fi
done
# med SYS KEY: the median of R[SYS.rN,KEY] over the rounds.
med() { for ((r = 1; r <= ROUNDS; r++)); do echo "${R[$1.r$r,$2]}"; done | median; }
for sys in vlogs pharos; do
	for k in cpu_gb cpu_gb_settle hwm; do R[$sys,med,$k]=$(med "$sys" "$k"); done
done

# ---------------------------------------------------------------------------
# Report.

# The cores other processes used during each ingestion (the machine's busy
# time less the system's own and the pusher's).
for sys in vlogs pharos; do
	for ((r = 1; r <= ROUNDS; r++)); do
		k=$sys.r$r
		((r == 1)) && k=$sys
		R[$k,other_cores]=$(calc '%.2f' "$(nproc) * (${R[$k,busy_ticks]} - ${R[$k,helper_cpu]} * $CLK_TCK) / ${R[$k,total_ticks]}")
	done
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b+0 == 0 || a == "nan" || b == "nan" || a == "" || b == "") print "n/a"; else printf "%.2f", a/b }'; }
# check VALUE OP LIMIT
check() { awk -v v="$1" -v op="$2" -v l="$3" 'BEGIN{ if (v == "n/a" || v == "nan") print "?"; else if ((op == "<=" && v+0 <= l+0) || (op == ">=" && v+0 >= l+0)) print "met"; else print "MISSED" }'; }
row() { # name vlogs pharos [goal-op goal-limit]
	local r; r=$(ratio "$3" "$2")
	if [[ -n ${4:-} ]]; then
		say "$(printf '%-46s %14s %14s %8s   %-8s %s' "$1" "$2" "$3" "$r" "$4 $5" "$(check "$r" "$4" "$5")")"
	else
		say "$(printf '%-46s %14s %14s %8s' "$1" "$2" "$3" "$r")"
	fi
}
plain() { say "$(printf '%-46s %14s %14s' "$1" "$2" "$3")"; }
mib() { calc '%.0f' "$1 / 1024"; }

say "## Result (ratios Pharos/VictoriaLogs)"
say ""
say "$(printf '%-46s %14s %14s %8s   %-8s' metric VictoriaLogs Pharos ratio goal)"
say "$(printf '%.0s-' $(seq 100))"
row "CPU-s per GB until all stored, median of $ROUNDS" "${R[vlogs,med,cpu_gb]}" "${R[pharos,med,cpu_gb]}" "<=" 1.5
row "CPU-s per GB incl. ${SETTLE}s settle, median" "${R[vlogs,med,cpu_gb_settle]}" "${R[pharos,med,cpu_gb_settle]}" "<=" 1.5
row "MB/s per core (input MB / CPU-s)" "${R[vlogs,mbps_core]}" "${R[pharos,mbps_core]}"
row "stored bytes per input byte (du -sb)" "${R[vlogs,disk_ratio]}" "${R[pharos,disk_ratio]}" "<=" 1.0
row "stored bytes per input byte (allocated)" "${R[vlogs,disk_alloc_ratio]}" "${R[pharos,disk_alloc_ratio]}"
row "peak RSS (VmHWM, MiB), median" "$(mib "${R[vlogs,med,hwm]}")" "$(mib "${R[pharos,med,hwm]}")"
row "substring filter, median (ms)" "${R[vlogs,filter,ms]}" "${R[pharos,filter,ms]}"
row "count of the filter's matches, median (ms)" "${R[vlogs,count,ms]}" "${R[pharos,count,ms]}"
say ""
say "Goal through the tail path: the agent alone (pharos -target=agent: tail, encode, publish, wait for"
say "  JetStream's PubAck) ${R[tailpath,mbps_core]} MB/s per core >= 50: $(check "${R[tailpath,mbps_core]}" ">=" 50)"
say "  ($(calc '%.0f' "$LINES / ${R[tailpath,cpu]}") lines/s per core, ${R[tailpath,mbps]} MB/s wall clock; with the NATS server's CPU"
say "  (${R[tailpath,nats_cpu]} s, fsync on every write) counted too: ${R[tailpath,nats_mbps_core]} MB/s per core)"
say "Whole pipeline in one process (tail, encode, JetStream with fsync, decode, store): ${R[pharos,mbps_core]} MB/s per core."
say "References: Vector's published file→TCP figure 76.7 MiB/s (80.4 MB/s, wall clock, not per core);"
say "  Loki's sizing guide ~3 MB/s per ingester core."
say ""
say "filter:  Pharos GET /loki/api/v1/query_range  $PHAROS_FILTER  (limit 1000)"
say "         VictoriaLogs /select/logsql/query     $VLOGS_FILTER  (limit 1000)"
say "count:   Pharos GET /loki/api/v1/query  $PHAROS_COUNT"
say "         VictoriaLogs                   $VLOGS_COUNT"
say "         range: from the start of ingestion - 60 s to now; ${QUERY_RUNS} runs each after one untimed run, system idle; curl %{time_total}"
say ""
say "## Rounds (CPU-seconds per GB until all stored / incl. settle; peak RSS MiB)"
say ""
say "$(printf '%-8s %-10s %24s %24s %8s' round order VictoriaLogs Pharos ratio)"
for ((r = 1; r <= ROUNDS; r++)); do
	order="pharos 1st"; ((r % 2 == 0)) && order="vlogs 1st"
	say "$(printf '%-8s %-10s %24s %24s %8s' "$r" "$order" \
		"${R[vlogs.r$r,cpu_gb]} / ${R[vlogs.r$r,cpu_gb_settle]} / $(mib "${R[vlogs.r$r,hwm]}")" \
		"${R[pharos.r$r,cpu_gb]} / ${R[pharos.r$r,cpu_gb_settle]} / $(mib "${R[pharos.r$r,hwm]}")" \
		"$(ratio "${R[pharos.r$r,cpu_gb]}" "${R[vlogs.r$r,cpu_gb]}")")"
done
say "(round 1 also ran the queries below, after its ingestion; the ratio of the medians is the result)"
say ""
say "## Details (round 1)"
say ""
say "$(printf '%-46s %14s %14s' '' VictoriaLogs Pharos)"
plain "all lines stored" "${R[vlogs,complete]}" "${R[pharos,complete]}"
plain "wall time until all stored (s)" "${R[vlogs,secs]}" "${R[pharos,secs]}"
plain "lines/s" "${R[vlogs,lps]}" "${R[pharos,lps]}"
plain "MB/s (input bytes / wall time)" "${R[vlogs,mbps]}" "${R[pharos,mbps]}"
plain "CPU-seconds until all stored" "${R[vlogs,cpu]}" "${R[pharos,cpu]}"
plain "CPU cores used (avg over the ingestion)" "${R[vlogs,cores]}" "${R[pharos,cores]}"
plain "CPU-seconds per MB" "${R[vlogs,cpu_mb]}" "${R[pharos,cpu_mb]}"
plain "CPU-seconds incl. settle (window s)" "${R[vlogs,cpu_settle]} (${R[vlogs,settle_secs]})" "${R[pharos,cpu_settle]} (${R[pharos,settle_secs]})"
plain "idle CPU before ingestion (cores)" "${R[vlogs,idle]}" "${R[pharos,idle]}"
plain "longest time without progress (s)" "${R[vlogs,stall]}" "${R[pharos,stall]}"
plain "stored-lines counter at the end" "${R[vlogs,stored]}" "${R[pharos,stored]}"
plain "count of all lines via query API (expected)" "${R[vlogs,all,n]} ($LINES)" "${R[pharos,sliced,n]} ($LINES)"
plain "  Pharos: in time slices, queries / s" "-" "${R[pharos,sliced,queries]} / ${R[pharos,sliced,secs]}"
plain "  one query counting all lines: result" "${R[vlogs,all,n]}" "${R[pharos,all,n]}"
plain "  one query counting all lines: time (ms)" "${R[vlogs,all,ms]}" "${R[pharos,all,ms]}"
plain "log store bytes, du -sb / allocated" "${R[vlogs,disk]} / ${R[vlogs,disk_alloc]}" "${R[pharos,disk]} / ${R[pharos,disk_alloc]}"
plain "NATS JetStream store after settle (bytes)" "-" "${R[pharos,nats]}"
plain "whole data dir after settle (bytes)" "${R[vlogs,disk]}" "${R[pharos,datadir]}"
plain "in-memory parts left when du ran" "${R[vlogs,inmem_left]}" "${R[pharos,inmem_left]}"
plain "filter matches (expected $NEEDLES)" "${R[vlogs,filter,n]}" "${R[pharos,filter,n]}"
plain "count result (expected $NEEDLES)" "${R[vlogs,count,n]}" "${R[pharos,count,n]}"
plain "filter / count max (ms)" "${R[vlogs,filter,max]} / ${R[vlogs,count,max]}" "${R[pharos,filter,max]} / ${R[pharos,count,max]}"
plain "query HTTP codes filter / count" "${R[vlogs,filter,code]} / ${R[vlogs,count,code]}" "${R[pharos,filter,code]} / ${R[pharos,count,code]}"
plain "peak RSS after the queries (MiB)" "$(mib "${R[vlogs,hwm_end]}")" "$(mib "${R[pharos,hwm_end]}")"
plain "helper CPU-s (the pusher, whole run)" "${R[vlogs,helper_cpu]}" "${R[pharos,helper_cpu]}"
plain "machine CPU busy in window (all procs, %)" "${R[vlogs,machine_busy]}" "${R[pharos,machine_busy]}"
plain "  of which other processes (cores)" "${R[vlogs,other_cores]}" "${R[pharos,other_cores]}"
plain "tail path: agent CPU-s / wall s / peak RSS MiB" "-" "${R[tailpath,cpu]} / ${R[tailpath,secs]} / $(mib "${R[tailpath,hwm]}")"
say "pusher: ${R[vlogs,pusher]}"
say "shutdown: ${R[vlogs,stop]}; ${R[pharos,stop]}; ${R[tailpath,stop]}"
say ""

PM=$LOGDIR/pharos.metrics.txt
pm() { awk -v m="$1" '($1==m || index($1, m"{")==1) {s+=$NF; n++} END{if(n) printf "%.0f", s; else printf "-"}' "$PM"; }
say "## Pharos path (end of settle)"
say "  tail: lines read $(pm pharos_tail_lines_read_total), entries sent $(pm pharos_tail_entries_sent_total), bytes read $(pm pharos_tail_bytes_read_total), dropped $(pm pharos_tail_dropped_entries_total), truncated $(pm pharos_tail_lines_truncated_total), push retries $(pm pharos_tail_push_retries_total), lag bytes $(pm pharos_tail_lag_bytes)"
say "  agent: entries published $(pm pharos_agent_log_entries_published_total) in $(pm pharos_agent_log_messages_published_total) messages, dropped $(pm pharos_agent_dropped_log_entries_total), publish retries $(pm pharos_agent_publish_retries_total), duplicates $(pm pharos_bus_publish_duplicates_total)"
say "  aggregator: entries appended $(pm pharos_aggregator_log_entries_appended_total), invalid messages $(pm pharos_aggregator_invalid_messages_total), awaiting durability $(pm pharos_aggregator_log_messages_awaiting_durability), ack delay avg $(calc '%.2f' "$(pm pharos_aggregator_log_ack_delay_seconds_sum) / $(pm pharos_aggregator_log_ack_delay_seconds_count)") s"
say "  log store: stored entries $(pm pharos_logs_stored_entries), rejected $(pm pharos_logs_rejected_entries_total), compressed $(pm pharos_logs_stored_compressed_bytes) B, parts $(pm pharos_logs_parts), durable rounds $(grep -E '^pharos_logs_durable_rounds_total' "$PM" | sed -E 's/.*result="([a-z]+)"\} /\1=/' | tr '\n' ' ')"
say ""
if grep -qE '"level":"(ERROR|WARN)"' "$LOGDIR/pharos.window.log"; then
	say "## Pharos warnings/errors from the rename on (count, message)"
	grep -E '"level":"(ERROR|WARN)"' "$LOGDIR/pharos.window.log" | jq -r '"\(.level) \(.msg)" + (if .err then ": \(.err)" else "" end)' 2>/dev/null |
		cut -c1-200 | sort | uniq -c | sort -rn | head -15 | tee -a "$RESULTS"
	say ""
fi
if grep -qE '\s(error|warn)\s' "$LOGDIR/vlogs.log"; then
	say "## VictoriaLogs warnings/errors (count, message)"
	grep -E '\s(error|warn)\s' "$LOGDIR/vlogs.log" | cut -f3- | cut -c1-200 | sort | uniq -c | sort -rn | head -10 | tee -a "$RESULTS"
	say ""
fi

if [[ -s $LOGDIR/pharos.pprof-flat.txt ]]; then
	say "## Pharos CPU profile (Go pprof, ${PROFILE_SECONDS}s from the rename on)"
	sed -n '1,/flat%/p' "$LOGDIR/pharos.pprof-flat.txt" | grep -vE '^(File|Build ID|Type):' | tee -a "$RESULTS"
	grep -A25 'flat%' "$LOGDIR/pharos.pprof-flat.txt" | tail -n +2 | tee -a "$RESULTS"
	say "inclusive (cum), top 40: $LOGDIR/pharos.pprof-cum.txt"
	say ""
fi

warn=()
for ((r = 1; r <= ROUNDS; r++)); do
	for sys in vlogs pharos; do
		[[ ${R[$sys.r$r,complete]} == yes ]] || warn+=("$sys round $r: not every line was stored within INGEST_TIMEOUT (${R[$sys.r$r,complete]})")
		k=$sys.r$r
		((r == 1)) && k=$sys
		awk -v c="${R[$k,other_cores]}" 'BEGIN{exit !(c+0 > 0.3)}' &&
			warn+=("$sys round $r: other processes used ${R[$k,other_cores]} cores (machine ${R[$k,machine_busy]}% busy): its CPU figures may be inflated")
	done
done
for sys in vlogs pharos; do
	[[ ${R[$sys,all,n]} == "$LINES" || ${R[$sys,all,n]} == skipped ]] || warn+=("$sys: one query counting all lines says ${R[$sys,all,n]}, expected $LINES")
	[[ ${R[$sys,filter,n]} == "$NEEDLES" && ${R[$sys,count,n]} == "$NEEDLES" ]] ||
		warn+=("$sys: the filter returned ${R[$sys,filter,n]} and the count ${R[$sys,count,n]}, expected $NEEDLES")
	awk -v s="${R[$sys,secs]}" 'BEGIN{exit !(s+0 < 10)}' &&
		warn+=("$sys window: only ${R[$sys,secs]} s: quantised by the ${POLL}s poll and 10 ms CPU ticks; use a bigger DATA_MB")
done
[[ ${R[pharos,sliced,n]} == "$LINES" && ${R[pharos,sliced,bad]} == 0 ]] ||
	warn+=("pharos: the sliced count through the Loki API says ${R[pharos,sliced,n]} (${R[pharos,sliced,bad]} failed slices), expected $LINES")
((PUSH_FAILS == 0)) || warn+=("the pusher failed in $PUSH_FAILS round(s), see $LOGDIR/vlogs*.push.log")
if ((${#warn[@]})); then
	say "## WARNING: this run is disturbed"
	for w in "${warn[@]}"; do say "  - $w"; done
	say ""
fi
say "load at end: $(uptime | sed 's/^ *//')"
say "logs, progress timelines, /metrics snapshots, du listings: $LOGDIR"
log "results: $RESULTS"
