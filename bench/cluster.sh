#!/usr/bin/env bash
# bench/cluster.sh — what distributing the aggregators costs: the same
# scrape load through 1 and then 3 aggregators (a ring, -target=aggregator),
# on one 3-node NATS cluster (-target=nats, R3 streams) with one agent and
# one querier, on this machine.
#
# Prints, per layout and as ratios 3/1:
#   - CPU-seconds per million samples of the whole pipeline (utime+stime of
#     every process — agent, NATS nodes, aggregators, querier — over the
#     window / the aggregators' pharos_aggregator_samples_appended_total
#     deltas): the distribution overhead per sample; goal: <= 1.10
#   - the same per role, the aggregators' with and without their idle cost
#   - median latency of three PromQL range queries through the querier, which
#     fans out to every aggregator of the ring; goal: <= 1.2
#
# Parameters (environment):
#   SERIES=20000  TARGETS=5  INTERVAL=10 (s)  CHURN=0.01 (share of series replaced per minute)
#   LAYOUTS="1 3" (aggregator counts, measured in this order; the ratios are second/first)
#   PARTITIONS=16  RF=1 (-ring.replication-factor; at most the smaller layout)
#   IDLE=20 (s: the aggregators' CPU with no agent running, their fixed cost)
#   WARMUP=60 (s)  WINDOW=120 (s)  QUERY_RUNS=10  QUERY_STEP=15 (s)  QUERY_RANGE=180 (s)
#   KEEP=0 (1 = keep the temp dir)  RESULTS_DIR=bench/results
#   LOAD_MAX= (if set: before each layout, wait up to LOAD_WAIT=900 s for the 1-min load average to drop to it)
set -euo pipefail

SERIES=${SERIES:-20000}
TARGETS=${TARGETS:-5}
INTERVAL=${INTERVAL:-10}
INTERVAL=${INTERVAL%s}
CHURN=${CHURN:-0.01}
read -ra LAYOUTS <<<"${LAYOUTS:-1 3}"
PARTITIONS=${PARTITIONS:-16}
RF=${RF:-1}
IDLE=${IDLE:-20}
WARMUP=${WARMUP:-60}
WINDOW=${WINDOW:-120}
QUERY_RUNS=${QUERY_RUNS:-10}
QUERY_STEP=${QUERY_STEP:-15}
QUERY_RANGE=${QUERY_RANGE:-180}
KEEP=${KEEP:-0}
LOAD_MAX=${LOAD_MAX:-}
LOAD_WAIT=${LOAD_WAIT:-900}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RESULTS_DIR=${RESULTS_DIR:-$ROOT/bench/results}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$RESULTS_DIR"
RESULTS=$RESULTS_DIR/cluster-$STAMP.txt
LOGDIR=$RESULTS_DIR/cluster-$STAMP.logs
mkdir -p "$LOGDIR"
WORK=$(mktemp -d /tmp/pharos-bench-cluster.XXXXXX)
CLK_TCK=$(getconf CLK_TCK)

PIDS=()
declare -A PNAME # pid → name, for the log
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

((${#LAYOUTS[@]} == 2)) || die "LAYOUTS must name two aggregator counts, got '${LAYOUTS[*]}'"
for n in "${LAYOUTS[@]}"; do [[ $n =~ ^[1-9]$ ]] || die "LAYOUTS: '$n' is not an aggregator count (1-9)"; done
((RF >= 1 && RF <= LAYOUTS[0] && RF <= LAYOUTS[1])) || die "RF=$RF must be between 1 and the smaller layout"

cleanup() {
	local rc=$?
	# Reverse start order: agents and aggregators before the NATS nodes.
	for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
		pid=${PIDS[i]}
		if kill -0 "$pid" 2>/dev/null; then stop_pid "$pid" "${PNAME[$pid]:-pid $pid}"; log "$STOP_MSG"; fi
	done
	if [[ $KEEP == 1 ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------
# Helpers: /proc and the processes' own /metrics.

# cpu_sum PID...: utime+stime ticks of all the processes.
cpu_sum() { local p s=0; for p in "$@"; do s=$((s + $(cpu_ticks "$p"))); done; echo "$s"; }
# metric_sum NAME ADDR...: NAME summed over the processes at ADDR...
metric_sum() { local m=$1 a s=0 v; shift; for a in "$@"; do v=$(metric "$a" "$m"); s=$((s + ${v:-0})); done; echo "$s"; }
aggregators() { if (($1 == 1)); then echo "1 aggregator"; else echo "$1 aggregators"; fi; }
instant() {
	curl -fsS --max-time 60 -G "http://$1/api/v1/query" --data-urlencode "query=$2" 2>/dev/null |
		jq -r 'if .status=="success" then ([.data.result[].value[1]] | if length==0 then "none" else join(",") end) else "error: " + .error end' 2>/dev/null || echo "request failed"
}
wait_ready() {
	local addr=$1 pid=$2
	for _ in $(seq 240); do
		kill -0 "$pid" 2>/dev/null || return 1
		curl -fsS --max-time 2 -o /dev/null "http://$addr/ready" 2>/dev/null && return 0
		sleep 0.5
	done
	return 1
}
# poll SECONDS WHAT COMMAND...: runs COMMAND every 0.5 s until it succeeds.
poll() {
	local secs=$1 what=$2 deadline
	shift 2
	deadline=$((SECONDS + secs))
	until "$@"; do
		((SECONDS < deadline)) || { log "not within ${secs}s: $what"; return 1; }
		sleep 0.5
	done
}

QUERIES=(
	'sum by (code) (rate(http_requests_total[1m]))'
	'histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket[1m])))'
	'topk(10, rate(node_cpu_seconds_total[1m]))'
)

# ---------------------------------------------------------------------------
# Build and prerequisites.

command -v curl >/dev/null || die "curl is needed (apt-get install -y curl)"
command -v jq >/dev/null || die "jq is needed (apt-get install -y jq)"

log "building pharos and targetgen into $WORK"
(cd "$ROOT" && go build -o "$WORK/pharos" ./cmd/pharos && go build -o "$WORK/targetgen" ./bench/targetgen) ||
	die "build failed"
PHAROS_VERSION=$("$WORK/pharos" -version 2>&1 | head -1 || true)
GIT_REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
GIT_DIRTY=$(git -C "$ROOT" status --porcelain 2>/dev/null | wc -l)

# Ports: loopback only, free ones. NATS: 3 × (http, client, route);
# per layout (reused by the next): aggregators 2 each, querier 2, agent 3.
MAXAGG=$((LAYOUTS[0] > LAYOUTS[1] ? LAYOUTS[0] : LAYOUTS[1]))
mapfile -t PORTS < <("$WORK/targetgen" -free-ports $((9 + 2 * MAXAGG + 5)))
next_port=0
take_port() { PORT=127.0.0.1:${PORTS[next_port]}; next_port=$((next_port + 1)); }

# ---------------------------------------------------------------------------
# Targets.

log "starting targetgen: $TARGETS targets, $SERIES series, churn $CHURN/min, interval ${INTERVAL}s"
"$WORK/targetgen" -targets "$TARGETS" -series "$SERIES" -interval "${INTERVAL}s" -churn "$CHURN" \
	-config-out "$WORK/scrape.yml" 2>"$LOGDIR/targetgen.log" &
TG_PID=$!
PIDS+=("$TG_PID")
PNAME[$TG_PID]=targetgen
for _ in $(seq 100); do [[ -s $WORK/scrape.yml ]] && break; kill -0 "$TG_PID" || die "targetgen exited"; sleep 0.1; done
[[ -s $WORK/scrape.yml ]] || die "targetgen wrote no configuration"
cp "$WORK/scrape.yml" "$LOGDIR/scrape.yml"
TG_SERIES=$(grep -m1 '"msg":"serving"' "$LOGDIR/targetgen.log" | jq -r .series)
EXPECTED_SPS=$(calc '%.0f' "($TG_SERIES + 5 * $TARGETS) / $INTERVAL") # + up, scrape_duration_seconds, … per target

# launch NAME ARGS...: starts pharos as NAME (log in LOGDIR); sets
# STARTED_PID. require_ready waits for its /ready.
launch() {
	local name=$1
	shift
	"$WORK/pharos" "$@" >"$LOGDIR/$name.stdout.log" 2>>"$LOGDIR/$name.log" &
	STARTED_PID=$!
	PIDS+=("$STARTED_PID")
	PNAME[$STARTED_PID]=$name
	log "[$name] started (pid $STARTED_PID): $*"
}
require_ready() {
	local name=$1 addr=$2 pid=$3
	wait_ready "$addr" "$pid" || { tail -20 "$LOGDIR/$name.log" >&2; die "[$name] not ready"; }
}

# ---------------------------------------------------------------------------
# The NATS cluster, shared by both layouts.

NATS_ADDRS=() NATS_PIDS=() NATS_CLIENTS=() NATS_ROUTES=()
for i in 1 2 3; do
	take_port; NATS_ADDRS+=("$PORT")
	take_port; NATS_CLIENTS+=("$PORT")
	take_port; NATS_ROUTES+=("$PORT")
done
NATS_URLS=$(printf 'nats://%s,' "${NATS_CLIENTS[@]}"); NATS_URLS=${NATS_URLS%,}
ROUTE_LIST=$(printf 'nats-route://%s,' "${NATS_ROUTES[@]}"); ROUTE_LIST=${ROUTE_LIST%,}
for i in 0 1 2; do
	launch "nats-$((i + 1))" -target=nats -data.dir "$WORK/nats-$((i + 1))" \
		-http.listen-address "${NATS_ADDRS[i]}" -nats.embedded.listen-address "${NATS_CLIENTS[i]}" \
		-nats.embedded.server-name "nats-$((i + 1))" -nats.embedded.cluster-name pharos-bench \
		-nats.embedded.cluster-listen-address "${NATS_ROUTES[i]}" -nats.embedded.routes "$ROUTE_LIST"
	NATS_PIDS+=("$STARTED_PID")
done
for i in 0 1 2; do require_ready "nats-$((i + 1))" "${NATS_ADDRS[i]}" "${NATS_PIDS[i]}"; done
log "NATS cluster ready: $NATS_URLS"

LAYOUT_PORTS_AT=$next_port
COMMON=(-nats.url "$NATS_URLS" -nats.stream.replicas 3 -nats.partitions "$PARTITIONS" -ring.replication-factor "$RF")

: >"$RESULTS"
say "# Pharos cluster — ${LAYOUTS[0]} vs ${LAYOUTS[1]} aggregators, same NATS cluster and agent ($STAMP)"
say ""
say "machine:     $(nproc) CPUs, $(awk '/MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
say "load:        $(uptime | sed 's/^ *//')   (at start; other users of the machine build and test too)"
say "pharos:      ${PHAROS_VERSION:-?} — built from $ROOT at $GIT_REV, $GIT_DIRTY uncommitted/untracked paths in the work tree"
say "topology:    3 NATS nodes (-target=nats, R3 streams, sync always), 1 agent, 1 querier (finds the aggregators in the ring), N aggregators; $PARTITIONS partitions, RF $RF"
say "workload:    $TARGETS targets, $TG_SERIES series (targetgen), interval ${INTERVAL}s, churn $CHURN of the series per minute, ~$EXPECTED_SPS samples/s expected"
say "schedule:    per layout: aggregators + querier, balanced ring, ${IDLE}s idle, agent; warm-up ${WARMUP}s, window ${WINDOW}s, queries (${QUERY_RUNS}x each, range ${QUERY_RANGE}s, step ${QUERY_STEP}s); agent stopped, stream drained, aggregators stopped"
say ""

declare -A R

# balanced N ADDR...: every aggregator consumes its share and together they
# consume every partition-replica.
balanced() {
	local total=$((PARTITIONS * RF)) n=$# a v sum=0 lo hi
	lo=$((total / n)); hi=$(((total + n - 1) / n))
	for a in "$@"; do
		v=$(metric "$a" pharos_aggregator_consumers)
		[[ -n $v ]] && ((v >= lo && v <= hi)) || return 1
		sum=$((sum + v))
	done
	((sum == total))
}
# drained ADDR...: no consumer of any aggregator has unacknowledged messages.
drained() {
	local a lag
	for a in "$@"; do
		lag=$(curl -fsS --max-time 10 "http://$a/cluster/status" 2>/dev/null | jq '[.consumers[]?.lag] | add // 0') || return 1
		[[ -n $lag ]] && ((lag == 0)) || return 1
	done
}

run_layout() {
	local n=$1 key=$1 i a b tag
	tag="[$(aggregators "$n")]"
	if [[ -n $LOAD_MAX ]]; then
		local waited=0
		while awk -v l="$(cut -d' ' -f1 /proc/loadavg)" -v m="$LOAD_MAX" 'BEGIN{exit !(l+0 > m+0)}' && ((waited < LOAD_WAIT)); do
			((waited % 60 == 0)) && log "$tag load $(cut -d' ' -f1 /proc/loadavg) > LOAD_MAX=$LOAD_MAX: waiting (up to ${LOAD_WAIT}s)"
			sleep 5; waited=$((waited + 5))
		done
	fi
	next_port=$LAYOUT_PORTS_AT
	local agg_addrs=() agg_pids=() gossip=() seeds
	for ((i = 1; i <= n; i++)); do take_port; agg_addrs+=("$PORT"); take_port; gossip+=("$PORT"); done
	seeds=$(IFS=,; echo "${gossip[*]}")
	local q_addr q_gossip a_addr a_grpc a_http
	take_port; q_addr=$PORT; take_port; q_gossip=$PORT
	take_port; a_addr=$PORT; take_port; a_grpc=$PORT; take_port; a_http=$PORT

	# A lone aggregator starts the gossip cluster (joining only itself fails).
	local join=(-memberlist.join "$seeds")
	((n > 1)) || join=()
	for ((i = 1; i <= n; i++)); do
		launch "L$n-aggregator-$i" -target=aggregator -data.dir "$WORK/L$n-aggregator-$i" \
			-http.listen-address "${agg_addrs[i - 1]}" -ring.instance-id "aggregator-$i" \
			-memberlist.bind-address "${gossip[i - 1]}" "${join[@]}" "${COMMON[@]}"
		agg_pids+=("$STARTED_PID")
	done
	launch "L$n-query" -target=query -data.dir "$WORK/L$n-query" -http.listen-address "$q_addr" \
		-memberlist.bind-address "$q_gossip" -memberlist.join "$seeds" "${COMMON[@]}"
	local q_pid=$STARTED_PID
	for ((i = 1; i <= n; i++)); do require_ready "L$n-aggregator-$i" "${agg_addrs[i - 1]}" "${agg_pids[i - 1]}"; done
	require_ready "L$n-query" "$q_addr" "$q_pid"
	poll 120 "$n aggregators balanced over $PARTITIONS partitions × RF $RF" balanced "${agg_addrs[@]}" || die "$tag ring not balanced"
	log "$tag ring balanced: $(for a in "${agg_addrs[@]}"; do printf '%s ' "$(metric "$a" pharos_aggregator_consumers)"; done)"

	# --- idle: what the aggregators cost with nothing to consume (ring
	# heartbeats, gossip, empty pulls, TSDB housekeeping, Go runtime) ---
	local i0 i1 it0 it1
	it0=$(date +%s.%N); i0=$(cpu_sum "${agg_pids[@]}")
	sleep "$IDLE"
	it1=$(date +%s.%N); i1=$(cpu_sum "${agg_pids[@]}")
	R[$key,idle_cores]=$(calc '%.4f' "($i1 - $i0) / $CLK_TCK / ($it1 - $it0)")
	log "$tag idle: aggregators use ${R[$key,idle_cores]} cores with nothing to consume"

	launch "L$n-agent" -target=agent -data.dir "$WORK/L$n-agent" -http.listen-address "$a_addr" \
		-otlp.grpc.listen-address "$a_grpc" -otlp.http.listen-address "$a_http" -agent.id bench-agent \
		-scrape.config-file "$WORK/scrape.yml" "${COMMON[@]}"
	local a_pid=$STARTED_PID
	require_ready "L$n-agent" "$a_addr" "$a_pid"
	log "$tag all ready; warming up ${WARMUP}s"
	sleep "$WARMUP"

	# --- window ---
	local t0 t1 ca0 ca1 cg0 cg1 cn0 cn1 cq0 cq1 ct0 ct1 s0 s1 p0 p1 mb0 mt0 mb1 mt1 load0 l
	for l in "${agg_pids[@]}" "$q_pid" "$a_pid"; do kill -0 "$l" 2>/dev/null || die "$tag a process exited during warm-up (pid $l)"; done
	load0=$(uptime | sed 's/.*load average: //')
	read -r mb0 mt0 < <(machine_busy)
	t0=$(date +%s.%N)
	ca0=$(cpu_sum "${agg_pids[@]}"); cg0=$(cpu_ticks "$a_pid"); cn0=$(cpu_sum "${NATS_PIDS[@]}"); cq0=$(cpu_ticks "$q_pid"); ct0=$(cpu_ticks "$TG_PID")
	s0=$(metric_sum pharos_aggregator_samples_appended_total "${agg_addrs[@]}")
	p0=$(metric "$a_addr" pharos_agent_samples_published_total)
	log "$tag window start: appended=$s0"
	sleep "$WINDOW"
	t1=$(date +%s.%N)
	ca1=$(cpu_sum "${agg_pids[@]}"); cg1=$(cpu_ticks "$a_pid"); cn1=$(cpu_sum "${NATS_PIDS[@]}"); cq1=$(cpu_ticks "$q_pid"); ct1=$(cpu_ticks "$TG_PID")
	s1=$(metric_sum pharos_aggregator_samples_appended_total "${agg_addrs[@]}")
	p1=$(metric "$a_addr" pharos_agent_samples_published_total)
	read -r mb1 mt1 < <(machine_busy)
	log "$tag window end: appended=$s1"

	local elapsed samples
	elapsed=$(calc '%.3f' "$t1 - $t0")
	samples=$((s1 - s0))
	R[$key,elapsed]=$elapsed
	R[$key,samples]=$samples
	R[$key,published]=$(calc '%.0f' "${p1:-0} - ${p0:-0}")
	R[$key,sps]=$(calc '%.0f' "$samples / $elapsed")
	local part ticks
	for part in agg:$ca0:$ca1 agent:$cg0:$cg1 nats:$cn0:$cn1 query:$cq0:$cq1; do
		IFS=: read -r l a b <<<"$part"
		ticks=$((b - a))
		R[$key,cpu_$l]=$(calc '%.3f' "$ticks / $CLK_TCK")
		R[$key,per_m_$l]=$( ((samples > 0)) && calc '%.3f' "$ticks / $CLK_TCK / ($samples / 1e6)" || echo nan)
	done
	ticks=$(((ca1 - ca0) + (cg1 - cg0) + (cn1 - cn0) + (cq1 - cq0)))
	R[$key,cpu_all]=$(calc '%.3f' "$ticks / $CLK_TCK")
	R[$key,per_m_all]=$( ((samples > 0)) && calc '%.3f' "$ticks / $CLK_TCK / ($samples / 1e6)" || echo nan)
	R[$key,per_m_agg_net]=$( ((samples > 0)) && calc '%.3f' "(($ca1 - $ca0) / $CLK_TCK - ${R[$key,idle_cores]} * $elapsed) / ($samples / 1e6)" || echo nan)
	R[$key,tgcpu]=$(calc '%.3f' "($ct1 - $ct0) / $CLK_TCK")
	R[$key,machine_busy]=$(calc '%.0f' "100 * ($mb1 - $mb0) / ($mt1 - $mt0)")
	R[$key,other_cores]=$(calc '%.2f' "$(nproc) * ($mb1 - $mb0 - $ticks - ($ct1 - $ct0)) / ($mt1 - $mt0)")
	R[$key,load]="$load0 → $(uptime | sed 's/.*load average: //')"
	R[$key,consumers]=$(for a in "${agg_addrs[@]}"; do printf '%s ' "$(metric "$a" pharos_aggregator_consumers)"; done)
	R[$key,per_agg]=$(for a in "${agg_addrs[@]}"; do printf '%s ' "$(metric "$a" pharos_aggregator_samples_appended_total)"; done)
	R[$key,up]=$(instant "$q_addr" 'count(up == 1)')/$(instant "$q_addr" 'count(up)')
	R[$key,head_series]=$(metric_sum prometheus_tsdb_head_series "${agg_addrs[@]}")

	# --- queries through the querier (the system keeps ingesting) ---
	local qi q end start body shape tt code
	for qi in "${!QUERIES[@]}"; do
		q=${QUERIES[$qi]}
		end=$(date +%s.%N); start=$(calc '%.3f' "$end - $QUERY_RANGE")
		body=$(curl -fsS --max-time 120 -G "http://$q_addr/api/v1/query_range" --data-urlencode "query=$q" \
			--data-urlencode "start=$start" --data-urlencode "end=$end" --data-urlencode "step=$QUERY_STEP" 2>&1 || true)
		shape=$(jq -r 'if .status=="success" then "\(.data.result|length) series, \([.data.result[].values|length]|add // 0) points" + (if (.warnings // []) | length > 0 then ", warnings: " + (.warnings | join("; ")) else "" end) else "error: \(.error)" end' <<<"$body" 2>/dev/null || echo "bad response: ${body:0:200}")
		R[$key,q$qi,shape]=$shape
		: >"$WORK/L$n.q$qi"
		for _ in $(seq "$QUERY_RUNS"); do
			end=$(date +%s.%N); start=$(calc '%.3f' "$end - $QUERY_RANGE")
			read -r tt code < <(curl -sS --max-time 120 -o /dev/null -w '%{time_total} %{http_code}\n' -G "http://$q_addr/api/v1/query_range" \
				--data-urlencode "query=$q" --data-urlencode "start=$start" --data-urlencode "end=$end" --data-urlencode "step=$QUERY_STEP" || echo "nan 000")
			[[ $code == 200 || ${R[$key,q$qi,shape]} == *"HTTP $code"* ]] || R[$key,q$qi,shape]+=" (HTTP $code seen)"
			echo "$tt" >>"$WORK/L$n.q$qi"
		done
		R[$key,q$qi]=$(calc '%.1f' "$(median <"$WORK/L$n.q$qi") * 1000")
		log "$tag q$((qi + 1)): median ${R[$key,q$qi]} ms, ${R[$key,q$qi,shape]}"
	done
	for a in "${agg_addrs[@]}"; do curl -fsS --max-time 10 "http://$a/cluster/status" >>"$LOGDIR/L$n.cluster-status.json" 2>/dev/null || true; done

	# --- wind down: the agent flushes, the aggregators drain the stream ---
	stop_pid "$a_pid" "L$n-agent"; R[$key,stop]="$STOP_MSG"
	poll 120 "stream drained by the $n aggregators" drained "${agg_addrs[@]}" || log "$tag WARNING: stream not drained"
	stop_pid "$q_pid" "L$n-query"; R[$key,stop]+="; $STOP_MSG"
	for ((i = 1; i <= n; i++)); do stop_pid "${agg_pids[i - 1]}" "L$n-aggregator-$i"; R[$key,stop]+="; $STOP_MSG"; done
	R[$key,log_errors]=$(cat "$LOGDIR"/L"$n"-*.log | grep -ciE '"level":"(ERROR|WARN)"' || true)
	log "$tag done: ${R[$key,stop]}"
}

for n in "${LAYOUTS[@]}"; do run_layout "$n"; done

# ---------------------------------------------------------------------------
# Report.

A=${LAYOUTS[0]} B=${LAYOUTS[1]}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b+0 == 0 || a == "nan" || b == "nan") print "n/a"; else printf "%.2f", a/b }'; }
verdict() { awk -v r="$1" -v g="$2" 'BEGIN{ if (r == "n/a") print "?"; else if (g == "") print ""; else if (r+0 <= g+0) print "met"; else print "MISSED" }'; }
row() { # name a b goal
	local r; r=$(ratio "$3" "$2")
	say "$(printf '%-46s %14s %14s %8s   %-7s %s' "$1" "$2" "$3" "$r" "${4:+<= $4}" "$(verdict "$r" "${4:-}")")"
}
plain() { say "$(printf '%-46s %14s %14s' "$1" "$2" "$3")"; }

HA=$(aggregators "$A") HB=$(aggregators "$B")
say "## Result (ratios $B/$A)"
say ""
say "$(printf '%-46s %14s %14s %8s   %-7s' metric "$HA" "$HB" ratio goal)"
say "$(printf '%.0s-' $(seq 100))"
row "whole pipeline CPU-s per million samples" "${R[$A,per_m_all]}" "${R[$B,per_m_all]}" 1.10
row "  aggregators' CPU-s per million samples" "${R[$A,per_m_agg]}" "${R[$B,per_m_agg]}"
row "  the same, idle cost subtracted" "${R[$A,per_m_agg_net]}" "${R[$B,per_m_agg_net]}"
row "  agent CPU-s per million samples" "${R[$A,per_m_agent]}" "${R[$B,per_m_agent]}"
row "  NATS (3 nodes) CPU-s per million samples" "${R[$A,per_m_nats]}" "${R[$B,per_m_nats]}"
row "  querier CPU-s per million samples" "${R[$A,per_m_query]}" "${R[$B,per_m_query]}"
for qi in "${!QUERIES[@]}"; do
	row "query q$((qi + 1)) median latency via querier (ms)" "${R[$A,q$qi]}" "${R[$B,q$qi]}" 1.2
done
say ""
for qi in "${!QUERIES[@]}"; do say "q$((qi + 1)): ${QUERIES[$qi]}"; done
say "    range: last ${QUERY_RANGE}s, step ${QUERY_STEP}s, ${QUERY_RUNS} runs each after the window while ingesting; curl %{time_total}"
say ""
say "## Details"
say ""
say "$(printf '%-46s %14s %14s' '' "$HA" "$HB")"
plain "window (s)" "${R[$A,elapsed]}" "${R[$B,elapsed]}"
plain "samples appended in window (all aggregators)" "${R[$A,samples]}" "${R[$B,samples]}"
plain "samples published by the agent in window" "${R[$A,published]}" "${R[$B,published]}"
plain "samples/s appended (expected ~$EXPECTED_SPS)" "${R[$A,sps]}" "${R[$B,sps]}"
plain "CPU-s in window: aggregators" "${R[$A,cpu_agg]}" "${R[$B,cpu_agg]}"
plain "aggregators' idle CPU (cores, no agent, ${IDLE}s)" "${R[$A,idle_cores]}" "${R[$B,idle_cores]}"
plain "CPU-s in window: agent" "${R[$A,cpu_agent]}" "${R[$B,cpu_agent]}"
plain "CPU-s in window: NATS nodes" "${R[$A,cpu_nats]}" "${R[$B,cpu_nats]}"
plain "CPU-s in window: querier" "${R[$A,cpu_query]}" "${R[$B,cpu_query]}"
plain "CPU-s in window: targetgen" "${R[$A,tgcpu]}" "${R[$B,tgcpu]}"
plain "head series (sum over aggregators)" "${R[$A,head_series]}" "${R[$B,head_series]}"
plain "targets up at end (up==1/all)" "${R[$A,up]}" "${R[$B,up]}"
plain "machine CPU busy in window (all procs, %)" "${R[$A,machine_busy]}" "${R[$B,machine_busy]}"
plain "  of which other processes (cores)" "${R[$A,other_cores]}" "${R[$B,other_cores]}"
plain "log lines at warn/error (whole layout)" "${R[$A,log_errors]}" "${R[$B,log_errors]}"
say "consumers per aggregator: ${HA}: ${R[$A,consumers]}; ${HB}: ${R[$B,consumers]}"
say "samples appended per aggregator since start: ${HA}: ${R[$A,per_agg]}; ${HB}: ${R[$B,per_agg]}"
for qi in "${!QUERIES[@]}"; do
	say "q$((qi + 1)) result: ${HA}: ${R[$A,q$qi,shape]}; ${HB}: ${R[$B,q$qi,shape]}"
done
say "load average during window: ${HA}: ${R[$A,load]}; ${HB}: ${R[$B,load]}"
say "shutdown: ${HA}: ${R[$A,stop]}"
say "          ${HB}: ${R[$B,stop]}"
say ""
warn=()
for k in "$A" "$B"; do
	awk -v b="${R[$k,machine_busy]}" 'BEGIN{exit !(b+0 > 60)}' &&
		warn+=("$k-aggregator window: machine ${R[$k,machine_busy]}% busy (other processes ${R[$k,other_cores]} cores): not well below saturation")
	awk -v s="${R[$k,sps]}" -v e="$EXPECTED_SPS" 'BEGIN{exit !(s+0 < 0.9*e)}' &&
		warn+=("$k-aggregator window: ${R[$k,sps]} samples/s appended, expected ~$EXPECTED_SPS")
	[[ ${R[$k,up]} == "$TARGETS/$TARGETS" ]] || warn+=("$k-aggregator window: targets up ${R[$k,up]}")
done
if ((WINDOW < 10 * INTERVAL)); then
	warn+=("window of ${WINDOW}s holds fewer than 10 scrape intervals: sample counts are quantised by whole scrapes (~$((TG_SERIES / TARGETS)) samples each)")
fi
if ((${#warn[@]})); then
	say "## WARNING: this run is disturbed or too short to trust"
	for w in "${warn[@]}"; do say "  - $w"; done
	say ""
fi
say "load at end: $(uptime | sed 's/^ *//')"
say "logs, /cluster/status snapshots: $LOGDIR"
log "results: $RESULTS"
