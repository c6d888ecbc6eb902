#!/usr/bin/env bash
# bench/metrics-vs-prometheus.sh — Pharos (all-in-one) against Debian's
# Prometheus, scraping the same synthetic targets, one after the other.
#
# Prints ratios Pharos/Prometheus for CPU-seconds per million samples, RSS per
# active series, disk bytes per sample and the median latency of three PromQL
# range queries; goal: every ratio <= 1.0. See bench/README.md.
#
# Parameters (environment):
#   SERIES=100000  TARGETS=20  INTERVAL=10 (s)  CHURN=0.01 (share of series replaced per minute)
#   WARMUP=120 (s)  WINDOW=300 (s)  QUERY_RUNS=20  QUERY_STEP=15 (s)  SAMPLE_EVERY=5 (s, RSS sampling)
#   PROFILE=1 (30 s `perf record` of each system after its window, 0 = off)  PROFILE_SECONDS=30
#   PROMETHEUS_BIN=/usr/bin/prometheus  KEEP=0 (1 = keep the temp dir)  RESULTS_DIR=bench/results
#   LOAD_MAX= (if set: before each system, wait up to LOAD_WAIT=900 s for the 1-min load average to drop to it)
set -euo pipefail

SERIES=${SERIES:-100000}
TARGETS=${TARGETS:-20}
INTERVAL=${INTERVAL:-10}
INTERVAL=${INTERVAL%s}
CHURN=${CHURN:-0.01}
WARMUP=${WARMUP:-120}
WINDOW=${WINDOW:-300}
QUERY_RUNS=${QUERY_RUNS:-20}
QUERY_STEP=${QUERY_STEP:-15}
SAMPLE_EVERY=${SAMPLE_EVERY:-5}
PROFILE=${PROFILE:-1}
PROFILE_SECONDS=${PROFILE_SECONDS:-30}
PROMETHEUS_BIN=${PROMETHEUS_BIN:-/usr/bin/prometheus}
KEEP=${KEEP:-0}
LOAD_MAX=${LOAD_MAX:-}
LOAD_WAIT=${LOAD_WAIT:-900}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RESULTS_DIR=${RESULTS_DIR:-$ROOT/bench/results}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$RESULTS_DIR"
RESULTS=$RESULTS_DIR/metrics-vs-prometheus-$STAMP.txt
LOGDIR=$RESULTS_DIR/metrics-vs-prometheus-$STAMP.logs
mkdir -p "$LOGDIR"
WORK=$(mktemp -d /tmp/pharos-bench.XXXXXX)
CLK_TCK=$(getconf CLK_TCK)

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

# metric_by ADDR NAME: every series of NAME with its value.
metric_by() { curl -fsS --max-time 20 "http://$1/metrics" 2>/dev/null | awk -v m="$2" '$1==m || index($1, m"{")==1' || true; }
# instant ADDR QUERY: the first value of an instant query's vector result.
instant() {
	curl -fsS --max-time 60 -G "http://$1/api/v1/query" --data-urlencode "query=$2" 2>/dev/null |
		jq -r 'if .status=="success" then ([.data.result[].value[1]] | if length==0 then "none" else join(",") end) else "error: " + .error end' 2>/dev/null || echo "request failed"
}
wait_ready() {
	local addr=$1 path=$2 pid=$3
	for _ in $(seq 240); do
		kill -0 "$pid" 2>/dev/null || return 1
		curl -fsS --max-time 2 -o /dev/null "http://$addr$path" 2>/dev/null && return 0
		sleep 0.5
	done
	return 1
}

QUERIES=(
	'sum by (code) (rate(http_requests_total[1m]))'
	'histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket[1m])))'
	'topk(10, rate(node_cpu_seconds_total[1m]))'
)

# ---------------------------------------------------------------------------
# Build and prerequisites.

command -v curl >/dev/null || die "curl is needed"
need_apt=()
[[ -x $PROMETHEUS_BIN ]] || need_apt+=(prometheus)
command -v jq >/dev/null || need_apt+=(jq)
if ((${#need_apt[@]})); then
	log "installing ${need_apt[*]} (apt-get)"
	SUDO=; [[ $(id -u) == 0 ]] || SUDO=sudo
	$SUDO apt-get install -y --no-install-recommends "${need_apt[@]}" >"$LOGDIR/apt.log" 2>&1 ||
		{ $SUDO apt-get update >>"$LOGDIR/apt.log" 2>&1 && $SUDO apt-get install -y --no-install-recommends "${need_apt[@]}" >>"$LOGDIR/apt.log" 2>&1; } ||
		die "apt-get install ${need_apt[*]} failed (see $LOGDIR/apt.log)"
fi
[[ -x $PROMETHEUS_BIN ]] || die "$PROMETHEUS_BIN missing after install"

log "building pharos and targetgen into $WORK"
(cd "$ROOT" && go build -o "$WORK/pharos" ./cmd/pharos && go build -o "$WORK/targetgen" ./bench/targetgen) ||
	die "build failed"

PROM_VERSION=$("$PROMETHEUS_BIN" --version 2>&1 | head -1)
PHAROS_VERSION=$("$WORK/pharos" -version 2>&1 | head -1 || true)
GIT_REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
GIT_DIRTY=$(git -C "$ROOT" status --porcelain 2>/dev/null | wc -l)

# Ports: loopback only. Prometheus and Pharos run one after the other, each
# on its own free port; the embedded NATS server picks its own (port 0).
mapfile -t PORTS < <("$WORK/targetgen" -free-ports 4)
PROM_ADDR=127.0.0.1:${PORTS[0]}
PHAROS_ADDR=127.0.0.1:${PORTS[1]}
PHAROS_EXTRA=(-nats.embedded.listen-address=127.0.0.1:0)
# Listeners that later versions of Pharos may add: keep them on loopback too.
PHAROS_HELP=$("$WORK/pharos" -help 2>&1 || true)
grep -q -- '-otlp.grpc.listen-address' <<<"$PHAROS_HELP" && PHAROS_EXTRA+=(-otlp.grpc.listen-address=127.0.0.1:${PORTS[2]})
grep -q -- '-otlp.http.listen-address' <<<"$PHAROS_HELP" && PHAROS_EXTRA+=(-otlp.http.listen-address=127.0.0.1:${PORTS[3]})

# ---------------------------------------------------------------------------
# Targets.

log "starting targetgen: $TARGETS targets, $SERIES series, churn $CHURN/min, interval ${INTERVAL}s"
"$WORK/targetgen" -targets "$TARGETS" -series "$SERIES" -interval "${INTERVAL}s" -churn "$CHURN" \
	-config-out "$WORK/scrape.yml" -file-sd-out "$WORK/targets.json" 2>"$LOGDIR/targetgen.log" &
TG_PID=$!
PIDS+=("$TG_PID")
for _ in $(seq 100); do [[ -s $WORK/scrape.yml ]] && break; kill -0 "$TG_PID" || die "targetgen exited"; sleep 0.1; done
[[ -s $WORK/scrape.yml ]] || die "targetgen wrote no configuration"
cp "$WORK/scrape.yml" "$LOGDIR/scrape.yml"
TG_SERIES=$(grep -m1 '"msg":"serving"' "$LOGDIR/targetgen.log" | jq -r .series)
EXPECTED_SPS=$(calc '%.0f' "($TG_SERIES + 5 * $TARGETS) / $INTERVAL") # + up, scrape_duration_seconds, … per target

: >"$RESULTS"
say "# Pharos vs Prometheus — metrics ingestion side by side ($STAMP)"
say ""
say "machine:     $(nproc) CPUs, $(awk '/MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
say "load:        $(uptime | sed 's/^ *//')   (at start; other users of the machine build and test too)"
say "prometheus:  $PROM_VERSION ($PROMETHEUS_BIN)"
say "pharos:      ${PHAROS_VERSION:-?} — built from $ROOT at $GIT_REV, $GIT_DIRTY uncommitted/untracked paths in the work tree"
say "workload:    $TARGETS targets, $TG_SERIES series (targetgen), interval ${INTERVAL}s, churn $CHURN of the series per minute, ~$EXPECTED_SPS samples/s expected"
say "schedule:    per system: warm-up ${WARMUP}s, measured window ${WINDOW}s, then checks, queries (${QUERY_RUNS}x each, range 5m, step ${QUERY_STEP}s)$([[ $PROFILE == 1 ]] && echo ", then a ${PROFILE_SECONDS}s perf profile")"
say ""

# ---------------------------------------------------------------------------
# One system: start, warm up, measure, check, query, profile, stop.
# Results land in R_<sys>_<key> variables.

declare -A R

run_system() {
	local sys=$1 addr=$2 ready_path=$3 datadir=$4
	shift 4
	if [[ -n $LOAD_MAX ]]; then
		local waited=0
		while awk -v l="$(cut -d' ' -f1 /proc/loadavg)" -v m="$LOAD_MAX" 'BEGIN{exit !(l+0 > m+0)}' && ((waited < LOAD_WAIT)); do
			((waited % 60 == 0)) && log "[$sys] load $(cut -d' ' -f1 /proc/loadavg) > LOAD_MAX=$LOAD_MAX: waiting (up to ${LOAD_WAIT}s)"
			sleep 5; waited=$((waited + 5))
		done
	fi
	log "[$sys] starting: $*"
	mkdir -p "$datadir"
	"$@" >"$LOGDIR/$sys.stdout.log" 2>"$LOGDIR/$sys.log" &
	local pid=$!
	PIDS+=("$pid")
	wait_ready "$addr" "$ready_path" "$pid" || { tail -20 "$LOGDIR/$sys.log" >&2; die "[$sys] not ready"; }
	log "[$sys] ready (pid $pid); warming up ${WARMUP}s"
	sleep "$WARMUP"
	kill -0 "$pid" 2>/dev/null || { tail -20 "$LOGDIR/$sys.log" >&2; die "[$sys] exited during warm-up"; }

	# --- window ---
	local load0 t0 c0 g0 s0 m0 pub0 t1 c1 g1 s1 m1 pub1 deadline now
	load0=$(uptime | sed 's/.*load average: //')
	read -r mb0 mt0 < <(machine_busy)
	t0=$(date +%s.%N); c0=$(cpu_ticks "$pid"); g0=$(cpu_ticks "$TG_PID")
	s0=$(metric "$addr" prometheus_tsdb_head_samples_appended_total)
	pub0=$(metric "$addr" pharos_agent_samples_published_total)
	local l0 l1
	l0=$(wc -l <"$LOGDIR/$sys.log")
	log "[$sys] window start: appended=$s0"
	: >"$WORK/$sys.rss"; : >"$WORK/$sys.series"
	deadline=$(awk -v t="$t0" -v w="$WINDOW" 'BEGIN{printf "%.3f", t+w}')
	local i=0
	while :; do
		rss_kb "$pid" >>"$WORK/$sys.rss" 2>/dev/null || die "[$sys] process gone during the window"
		if ((i % 6 == 0)); then metric "$addr" prometheus_tsdb_head_series >>"$WORK/$sys.series"; fi
		i=$((i + 1))
		now=$(date +%s.%N)
		local rest
		rest=$(awk -v d="$deadline" -v n="$now" -v e="$SAMPLE_EVERY" 'BEGIN{r=d-n; if(r<=0) print 0; else if(r<e) printf "%.3f", r; else print e}')
		[[ $rest == 0 ]] && break
		sleep "$rest"
	done
	t1=$(date +%s.%N); c1=$(cpu_ticks "$pid"); g1=$(cpu_ticks "$TG_PID")
	read -r mb1 mt1 < <(machine_busy)
	s1=$(metric "$addr" prometheus_tsdb_head_samples_appended_total)
	pub1=$(metric "$addr" pharos_agent_samples_published_total)
	metric "$addr" prometheus_tsdb_head_series >>"$WORK/$sys.series"
	l1=$(wc -l <"$LOGDIR/$sys.log")
	sed -n "$((l0 + 1)),${l1}p" "$LOGDIR/$sys.log" >"$LOGDIR/$sys.window.log"
	log "[$sys] window end: appended=$s1"

	local elapsed cpu tgcpu samples
	elapsed=$(calc '%.3f' "$t1 - $t0")
	cpu=$(calc '%.3f' "($c1 - $c0) / $CLK_TCK")
	tgcpu=$(calc '%.3f' "($g1 - $g0) / $CLK_TCK")
	samples=$(calc '%.0f' "${s1:-0} - ${s0:-0}")
	R[$sys,elapsed]=$elapsed
	R[$sys,cpu]=$cpu
	R[$sys,tgcpu]=$tgcpu
	R[$sys,samples]=$samples
	R[$sys,sps]=$(calc '%.0f' "$samples / $elapsed")
	R[$sys,cores]=$(calc '%.3f' "$cpu / $elapsed")
	R[$sys,machine_busy]=$(calc '%.0f' "100 * ($mb1 - $mb0) / ($mt1 - $mt0)")
	R[$sys,other_cores]=$(calc '%.2f' "$(nproc) * ($mb1 - $mb0 - ($c1 - $c0) - ($g1 - $g0)) / ($mt1 - $mt0)")
	R[$sys,load]="$load0 → $(uptime | sed 's/.*load average: //')"
	R[$sys,cpu_per_m]=$( ((samples > 0)) && calc '%.3f' "$cpu / ($samples / 1e6)" || echo nan)
	R[$sys,rss]=$(median <"$WORK/$sys.rss")
	R[$sys,rss_max]=$(sort -g "$WORK/$sys.rss" | tail -1)
	R[$sys,series]=$(grep -v '^$' "$WORK/$sys.series" | median)
	R[$sys,rss_per_series]=$(calc '%.0f' "${R[$sys,rss]} * 1024 / ${R[$sys,series]}")
	R[$sys,total_appended]=${s1:-0}
	if [[ -n $pub1 ]]; then R[$sys,published]=$(calc '%.0f' "$pub1 - ${pub0:-0}"); fi

	# --- disk, at the end of the window ---
	local du_all du_wal du_tsdb du_nats
	du_all=$(du -sB1 "$datadir" | cut -f1)
	R[$sys,disk]=$du_all
	R[$sys,disk_per_sample]=$(calc '%.3f' "$du_all / ${s1:-1}")
	if [[ $sys == pharos ]]; then
		du_tsdb=$(du -sB1 "$datadir/metrics" 2>/dev/null | cut -f1 || echo 0)
		du_wal=$(du -sB1 "$datadir/metrics/wal" 2>/dev/null | cut -f1 || echo 0)
		du_nats=$(du -sB1 "$datadir/nats" 2>/dev/null | cut -f1 || echo 0)
	else
		du_tsdb=$du_all
		du_wal=$(du -sB1 "$datadir/wal" 2>/dev/null | cut -f1 || echo 0)
		du_nats=0
	fi
	R[$sys,disk_tsdb]=$du_tsdb
	R[$sys,disk_wal]=$du_wal
	R[$sys,disk_nats]=$du_nats
	R[$sys,disk_tsdb_per_sample]=$(calc '%.3f' "$du_tsdb / ${s1:-1}")
	R[$sys,disk_wal_per_sample]=$(calc '%.3f' "$du_wal / ${s1:-1}")
	(cd "$datadir" && du -aB1 . | sort -k2) >"$LOGDIR/$sys.du.txt" 2>/dev/null || true

	# --- health of the scrapes and of the path, at the end of the window ---
	local w="${WINDOW}s"
	R[$sys,up_now]=$(instant "$addr" 'count(up == 1)')/$(instant "$addr" 'count(up)')
	R[$sys,up_window]=$(instant "$addr" "count(min_over_time(up[$w]) == 1)")
	R[$sys,scrapes_window]=$(instant "$addr" "sum(count_over_time(up[$w]))")
	R[$sys,scraped]=$(instant "$addr" 'sum(scrape_samples_scraped)')
	R[$sys,scrape_dur]=$(instant "$addr" "max(max_over_time(scrape_duration_seconds[$w]))")
	{
		echo "## $sys /metrics at the end of the window"
		curl -fsS --max-time 20 "http://$addr/metrics" 2>/dev/null |
			grep -E '^(prometheus_tsdb_head_(series|samples_appended_total|chunks)|prometheus_tsdb_out_of_order|prometheus_target_scrapes_|prometheus_tsdb_wal_|pharos_|process_|go_memstats_heap_inuse_bytes|go_goroutines)' || true
	} >"$LOGDIR/$sys.metrics.txt"

	# --- queries (the system keeps ingesting) ---
	local qi q end start body n tt code
	for qi in "${!QUERIES[@]}"; do
		q=${QUERIES[$qi]}
		end=$(date +%s.%N); start=$(calc '%.3f' "$end - 300")
		body=$(curl -fsS --max-time 120 -G "http://$addr/api/v1/query_range" --data-urlencode "query=$q" \
			--data-urlencode "start=$start" --data-urlencode "end=$end" --data-urlencode "step=$QUERY_STEP" 2>&1 || true)
		n=$(jq -r 'if .status=="success" then "\(.data.result|length) series, \([.data.result[].values|length]|add // 0) points" else "error: \(.error)" end' <<<"$body" 2>/dev/null || echo "bad response: ${body:0:200}")
		R[$sys,q$qi,shape]=$n
		: >"$WORK/$sys.q$qi"
		for _ in $(seq "$QUERY_RUNS"); do
			end=$(date +%s.%N); start=$(calc '%.3f' "$end - 300")
			read -r tt code < <(curl -sS --max-time 120 -o /dev/null -w '%{time_total} %{http_code}\n' -G "http://$addr/api/v1/query_range" \
				--data-urlencode "query=$q" --data-urlencode "start=$start" --data-urlencode "end=$end" --data-urlencode "step=$QUERY_STEP" || echo "nan 000")
			[[ $code == 200 || ${R[$sys,q$qi,shape]} == *"HTTP $code"* ]] || R[$sys,q$qi,shape]+=" (HTTP $code seen)"
			echo "$tt" >>"$WORK/$sys.q$qi"
		done
		R[$sys,q$qi]=$(calc '%.1f' "$(median <"$WORK/$sys.q$qi") * 1000")
		log "[$sys] q$qi: median ${R[$sys,q$qi]} ms, ${R[$sys,q$qi,shape]}"
	done

	# --- profile (after the window: does not count in it) ---
	if [[ $PROFILE == 1 ]] && command -v perf >/dev/null; then
		log "[$sys] perf record ${PROFILE_SECONDS}s"
		if perf record -q -F 997 -g -p "$pid" -o "$WORK/$sys.perf.data" -- sleep "$PROFILE_SECONDS" >"$LOGDIR/$sys.perf.log" 2>&1; then
			perf report -i "$WORK/$sys.perf.data" --no-children --sort dso,symbol --stdio -g none 2>/dev/null |
				grep -E '^ +[0-9.]+%' | sed -E 's/[[:space:]]+(-[[:space:]]+)*$//' | head -40 >"$LOGDIR/$sys.perf-flat.txt" || true
			perf report -i "$WORK/$sys.perf.data" --children --sort symbol --stdio -g none 2>/dev/null |
				grep -E '^ +[0-9.]+%' | sed -E 's/[[:space:]]+(-[[:space:]]+)*$//' | head -80 >"$LOGDIR/$sys.perf-children.txt" || true
		else
			log "[$sys] perf record failed (see $LOGDIR/$sys.perf.log)"
		fi
	fi

	# --- log problems ---
	R[$sys,log_errors]=$(grep -ciE '"level":"(ERROR|WARN)"|level=(error|warn)' "$LOGDIR/$sys.log" || true)
	R[$sys,log_errors_window]=$(grep -ciE '"level":"(ERROR|WARN)"|level=(error|warn)' "$LOGDIR/$sys.window.log" || true)

	stop_pid "$pid" "$sys"
	R[$sys,stop]=$STOP_MSG
	log "[$sys] ${R[$sys,stop]}"
}

run_system prometheus "$PROM_ADDR" /-/ready "$WORK/prometheus-data" \
	"$PROMETHEUS_BIN" --config.file="$WORK/scrape.yml" --storage.tsdb.path="$WORK/prometheus-data" \
	--web.listen-address="$PROM_ADDR" --log.level=info

run_system pharos "$PHAROS_ADDR" /ready "$WORK/pharos-data" \
	"$WORK/pharos" -data.dir="$WORK/pharos-data" -scrape.config-file="$WORK/scrape.yml" \
	-http.listen-address="$PHAROS_ADDR" "${PHAROS_EXTRA[@]}"

PHAROS_METRICS=$LOGDIR/pharos.metrics.txt

# ---------------------------------------------------------------------------
# Report.

ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b+0 == 0 || a == "nan" || b == "nan") print "n/a"; else printf "%.2f", a/b }'; }
verdict() { awk -v r="$1" 'BEGIN{ if (r == "n/a") print "?"; else if (r+0 <= 1.0) print "met"; else print "MISSED" }'; }
row() { # name prom pharos goal
	local r; r=$(ratio "$3" "$2")
	say "$(printf '%-44s %14s %14s %8s   %-6s %s' "$1" "$2" "$3" "$r" "$4" "$(verdict "$r")")"
}
plain() { say "$(printf '%-44s %14s %14s' "$1" "$2" "$3")"; }

say "## Result (ratios Pharos/Prometheus; goal <= 1.0)"
say ""
say "$(printf '%-44s %14s %14s %8s   %-6s' metric Prometheus Pharos ratio goal)"
say "$(printf '%.0s-' $(seq 96))"
row "CPU-seconds per million samples" "${R[prometheus,cpu_per_m]}" "${R[pharos,cpu_per_m]}" "<= 1.0"
row "RSS bytes per active series (median RSS)" "${R[prometheus,rss_per_series]}" "${R[pharos,rss_per_series]}" "<= 1.0"
row "disk bytes per sample (whole data dir)" "${R[prometheus,disk_per_sample]}" "${R[pharos,disk_per_sample]}" "<= 1.0"
row "disk bytes per sample (TSDB only)" "${R[prometheus,disk_tsdb_per_sample]}" "${R[pharos,disk_tsdb_per_sample]}" "<= 1.0"
for qi in "${!QUERIES[@]}"; do
	row "query q$((qi + 1)) median latency (ms)" "${R[prometheus,q$qi]}" "${R[pharos,q$qi]}" "<= 1.0"
done
say ""
say "q1: ${QUERIES[0]}"
say "q2: ${QUERIES[1]}"
say "q3: ${QUERIES[2]}"
say "    range: last 300 s, step ${QUERY_STEP}s, ${QUERY_RUNS} runs each after the window while ingesting; curl %{time_total}"
say ""
say "## Details"
say ""
say "$(printf '%-44s %14s %14s' '' Prometheus Pharos)"
plain "window (s)" "${R[prometheus,elapsed]}" "${R[pharos,elapsed]}"
plain "CPU-seconds in window (utime+stime)" "${R[prometheus,cpu]}" "${R[pharos,cpu]}"
plain "CPU cores used (avg)" "${R[prometheus,cores]}" "${R[pharos,cores]}"
plain "samples appended in window (TSDB counter)" "${R[prometheus,samples]}" "${R[pharos,samples]}"
plain "samples/s appended (expected ~$EXPECTED_SPS)" "${R[prometheus,sps]}" "${R[pharos,sps]}"
plain "samples published by the agent in window" "-" "${R[pharos,published]:-n/a}"
plain "RSS median / max (MiB)" "$(calc '%.0f' "${R[prometheus,rss]}/1024") / $(calc '%.0f' "${R[prometheus,rss_max]}/1024")" \
	"$(calc '%.0f' "${R[pharos,rss]}/1024") / $(calc '%.0f' "${R[pharos,rss_max]}/1024")"
plain "head series (median of samples)" "${R[prometheus,series]}" "${R[pharos,series]}"
plain "samples stored since start" "${R[prometheus,total_appended]}" "${R[pharos,total_appended]}"
plain "data dir bytes (all)" "${R[prometheus,disk]}" "${R[pharos,disk]}"
plain "  of which TSDB" "${R[prometheus,disk_tsdb]}" "${R[pharos,disk_tsdb]}"
plain "  of which TSDB WAL" "${R[prometheus,disk_wal]}" "${R[pharos,disk_wal]}"
plain "  of which NATS JetStream store" "-" "${R[pharos,disk_nats]}"
plain "WAL bytes per sample" "${R[prometheus,disk_wal_per_sample]}" "${R[pharos,disk_wal_per_sample]}"
plain "targets up at end (up==1/all)" "${R[prometheus,up_now]}" "${R[pharos,up_now]}"
plain "targets up in every scrape of the window" "${R[prometheus,up_window]}" "${R[pharos,up_window]}"
plain "scrapes stored in window (expected $((TARGETS * WINDOW / INTERVAL)); Pharos: less the last flush still batched)" "${R[prometheus,scrapes_window]}" "${R[pharos,scrapes_window]}"
plain "samples in the last scrapes (sum)" "${R[prometheus,scraped]}" "${R[pharos,scraped]}"
plain "max scrape duration in window (s)" "${R[prometheus,scrape_dur]}" "${R[pharos,scrape_dur]}"
for qi in "${!QUERIES[@]}"; do
	plain "q$((qi + 1)) result" "${R[prometheus,q$qi,shape]%%,*}" "${R[pharos,q$qi,shape]%%,*}"
done
plain "targetgen CPU-seconds in window" "${R[prometheus,tgcpu]}" "${R[pharos,tgcpu]}"
# targetgen serves the same scrapes in both windows, so its CPU is a yardstick
# for the machine's speed: on a shared host the two windows can differ by 10-20 %.
say "CPU ratio per targetgen CPU-second (the machine's drift between the windows taken out): $(ratio "$(awk -v c="${R[pharos,cpu]}" -v t="${R[pharos,tgcpu]}" 'BEGIN{ if (t+0 == 0) print "nan"; else printf "%.4f", c/t }')" "$(awk -v c="${R[prometheus,cpu]}" -v t="${R[prometheus,tgcpu]}" 'BEGIN{ if (t+0 == 0) print "nan"; else printf "%.4f", c/t }')")"
plain "machine CPU busy in window (all procs, %)" "${R[prometheus,machine_busy]}" "${R[pharos,machine_busy]}"
plain "  of which other processes (cores)" "${R[prometheus,other_cores]}" "${R[pharos,other_cores]}"
plain "log lines at warn/error: run / in window" "${R[prometheus,log_errors]} / ${R[prometheus,log_errors_window]}" "${R[pharos,log_errors]} / ${R[pharos,log_errors_window]}"
say "load average during window: prometheus ${R[prometheus,load]}; pharos ${R[pharos,load]}"
say "shutdown: ${R[prometheus,stop]}; ${R[pharos,stop]}"
say ""
say "## Pharos path health (end of window)"
for m in pharos_agent_dropped_samples_total pharos_agent_publish_retries_total pharos_agent_samples_rolled_back_total \
	pharos_aggregator_samples_rejected_total pharos_aggregator_invalid_messages_total pharos_agent_publish_spooling \
	pharos_agent_publish_queue_batches; do
	v=$(grep -E "^$m(\{| )" "$PHAROS_METRICS" | sed 's/^/  /' || true)
	say "${v:-  $m: (not exported)}"
done
say ""
if [[ -s $LOGDIR/pharos.window.log ]] && grep -qE '"level":"(ERROR|WARN)"' "$LOGDIR/pharos.window.log"; then
	say "## Pharos warnings/errors in the window (count, message)"
	grep -E '"level":"(ERROR|WARN)"' "$LOGDIR/pharos.window.log" | jq -r '"\(.level) \(.msg)" + (if .err then ": \(.err)" else "" end)' 2>/dev/null |
		cut -c1-200 | sort | uniq -c | sort -rn | head -15 | tee -a "$RESULTS"
	say ""
fi
if [[ -s $LOGDIR/pharos.perf-flat.txt ]]; then
	say "## Pharos CPU profile (perf -g, ${PROFILE_SECONDS}s after the window, while ingesting)"
	say "self time, top 20:"
	head -20 "$LOGDIR/pharos.perf-flat.txt" | tee -a "$RESULTS"
	say "inclusive time (children), top 40:"
	head -40 "$LOGDIR/pharos.perf-children.txt" | tee -a "$RESULTS"
	say "(the Debian prometheus binary is stripped: its profile, in the logs directory, has no symbols)"
	say ""
fi
# Flag runs that do not meet the benchmark's conditions.
warn=()
for sys in prometheus pharos; do
	awk -v b="${R[$sys,machine_busy]}" 'BEGIN{exit !(b+0 > 60)}' &&
		warn+=("$sys window: machine ${R[$sys,machine_busy]}% busy (other processes ${R[$sys,other_cores]} cores): not well below saturation")
	[[ ${R[$sys,up_window]} == "$TARGETS" ]] ||
		warn+=("$sys window: only ${R[$sys,up_window]} of $TARGETS targets were up in every scrape")
	awk -v n="${R[$sys,scrapes_window]}" -v e="$((TARGETS * WINDOW / INTERVAL))" 'BEGIN{exit !(n+0 < 0.97*e)}' &&
		warn+=("$sys window: ${R[$sys,scrapes_window]} scrapes stored, expected $((TARGETS * WINDOW / INTERVAL))")
done
if ((${#warn[@]})); then
	say "## WARNING: this run is disturbed"
	for w in "${warn[@]}"; do say "  - $w"; done
	say ""
fi
say "load at end: $(uptime | sed 's/^ *//')"
say "logs, /metrics snapshots, du listings, profiles: $LOGDIR"
log "results: $RESULTS"
