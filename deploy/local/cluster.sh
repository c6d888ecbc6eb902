#!/usr/bin/env bash
# deploy/local/cluster.sh — a Pharos cluster on loopback, one machine:
# 3 NATS nodes (-target=nats, R3 streams), 3 aggregators in a ring, 1 querier
# and 2 agents, each its own process with its own ports, data dir and log.
#
#   cluster.sh up            build pharos, start all nine, wait until ready, print them
#   cluster.sh status        processes, ring members, partition owners, consumer lag
#   cluster.sh kill NAME     SIGKILL one member (a crash)
#   cluster.sh start NAME    start a member again, with its data dir; wait until ready
#   cluster.sh down          SIGTERM everything it started, then SIGKILL stragglers
#   cluster.sh ports         the ports `up` uses (after PHAROS_CLUSTER_PORT_OFFSET)
#
# The querier answers on 127.0.0.1:9400 and agent-1 takes OTLP on 4317/4318,
# as the all-in-one does; NATS uses 4222-4224, so the all-in-one (`pharos`
# without -target) must not run at the same time.
#
# Environment (read by `up`, then kept in STATE/cluster.env for the other commands):
#   PHAROS_CLUSTER_DIR=$PWD/.pharos-cluster   state: bin/ data/NAME logs/NAME.log pids/NAME.pid scrape/
#   PHAROS_CLUSTER_RF=1                       -ring.replication-factor (aggregators consuming each partition)
#   PHAROS_CLUSTER_PARTITIONS=16              -nats.partitions
#   PHAROS_CLUSTER_PORT_OFFSET=0              added to every port (e.g. 20000: querier on 29400)
#   PHAROS_CLUSTER_SCRAPE_INTERVAL=15s        how often the agents scrape the members' /metrics
#   PHAROS_CLUSTER_EXTRA_ARGS=                flags added to every pharos process (last, so they win),
#                                             e.g. "-ring.heartbeat-period=1s -ring.heartbeat-timeout=3s"
#   PHAROS_CLUSTER_READY_TIMEOUT=60           seconds `up` and `start` wait for /ready
#   PHAROS_BIN=                               use this pharos binary instead of building one
#
# PHAROS_* variables meant for pharos itself are not passed on to the nine
# processes (they would apply to every role); use PHAROS_CLUSTER_EXTRA_ARGS.
# Linux only (/proc, setsid); needs bash, curl and jq. Stops and kills only processes it started: each
# pid file is written by the process itself, and a pid is signalled only
# while its command line still names its own data directory.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# Absolute: a member's pid is recognised by the data dir on its command line.
STATE=$(realpath -m "${PHAROS_CLUSTER_DIR:-$PWD/.pharos-cluster}")
ENV_FILE=$STATE/cluster.env

NATS_NODES=(nats-1 nats-2 nats-3)
AGGREGATORS=(aggregator-1 aggregator-2 aggregator-3)
QUERIERS=(query-1)
AGENTS=(agent-1 agent-2)
# Start order; `down` stops in reverse groups (agents flush into NATS first).
NAMES=("${NATS_NODES[@]}" "${AGGREGATORS[@]}" "${QUERIERS[@]}" "${AGENTS[@]}")

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
	sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2
	exit 2
}

need_tools() {
	local missing=()
	command -v curl >/dev/null || missing+=(curl)
	command -v jq >/dev/null || missing+=(jq)
	command -v setsid >/dev/null || missing+=(util-linux)
	((${#missing[@]} == 0)) || die "missing ${missing[*]}: install with 'sudo apt-get install -y ${missing[*]}'"
}

# ---------------------------------------------------------------------------
# Settings: from the environment for `up`, from cluster.env afterwards, so
# that `start NAME` runs a member exactly as `up` did.

load_settings() {
	if [[ $1 == fresh ]]; then
		OFFSET=${PHAROS_CLUSTER_PORT_OFFSET:-0}
		RF=${PHAROS_CLUSTER_RF:-1}
		PARTITIONS=${PHAROS_CLUSTER_PARTITIONS:-16}
		SCRAPE_INTERVAL=${PHAROS_CLUSTER_SCRAPE_INTERVAL:-15s}
		read -ra EXTRA_ARGS <<<"${PHAROS_CLUSTER_EXTRA_ARGS:-}"
		BIN=${PHAROS_BIN:-}
	else
		[[ -f $ENV_FILE ]] || die "no cluster in $STATE (run '$0 up' first, or set PHAROS_CLUSTER_DIR)"
		# shellcheck source=/dev/null
		source "$ENV_FILE"
	fi
	READY_TIMEOUT=${PHAROS_CLUSTER_READY_TIMEOUT:-60}
	[[ $OFFSET =~ ^[0-9]+$ ]] && ((OFFSET + 9423 <= 65535)) || die "PHAROS_CLUSTER_PORT_OFFSET=$OFFSET: want 0..56112"
	[[ $RF =~ ^[1-3]$ ]] || die "PHAROS_CLUSTER_RF=$RF: want 1, 2 or 3 (there are 3 aggregators)"
	[[ $PARTITIONS =~ ^[0-9]+$ ]] && ((PARTITIONS >= 1 && PARTITIONS <= 1024)) || die "PHAROS_CLUSTER_PARTITIONS=$PARTITIONS: want 1..1024"
	[[ $READY_TIMEOUT =~ ^[0-9]+$ ]] || die "PHAROS_CLUSTER_READY_TIMEOUT=$READY_TIMEOUT: want whole seconds"
}

save_settings() {
	local tmp=$ENV_FILE.tmp
	{
		printf 'OFFSET=%q\nRF=%q\nPARTITIONS=%q\nSCRAPE_INTERVAL=%q\nBIN=%q\n' "$OFFSET" "$RF" "$PARTITIONS" "$SCRAPE_INTERVAL" "$BIN"
		printf 'EXTRA_ARGS=('
		((${#EXTRA_ARGS[@]} == 0)) || printf '%q ' "${EXTRA_ARGS[@]}"
		printf ')\n'
	} >"$tmp"
	mv "$tmp" "$ENV_FILE"
}

# ---------------------------------------------------------------------------
# Topology: ports and command lines. Base ports (before the offset):
#   query-1        HTTP 9400, gossip 7949
#   aggregator-N   HTTP 9400+N, gossip 7945+N          (9401-9403, 7946-7948)
#   agent-N        HTTP 9410+N, OTLP gRPC/HTTP 4317/4318 + 2(N-1)
#   nats-N         HTTP 9420+N, client 4221+N, routes 6221+N

index() { echo "${1##*-}"; }
role() { echo "${1%-*}"; }
port() { echo $(($1 + OFFSET)); }
addr() { echo "127.0.0.1:$(port "$1")"; }

http_addr() {
	local n; n=$(index "$1")
	case $(role "$1") in
	query) addr 9400 ;;
	aggregator) addr $((9400 + n)) ;;
	agent) addr $((9410 + n)) ;;
	nats) addr $((9420 + n)) ;;
	*) die "unknown member $1" ;;
	esac
}

# other_addrs NAME: "kind=addr" for each listener besides HTTP.
other_addrs() {
	local n; n=$(index "$1")
	case $(role "$1") in
	query) echo "gossip=$(addr 7949)" ;;
	aggregator) echo "gossip=$(addr $((7945 + n)))" ;;
	agent) echo "otlp-grpc=$(addr $((4317 + 2 * (n - 1)))) otlp-http=$(addr $((4318 + 2 * (n - 1))))" ;;
	nats) echo "client=$(addr $((4221 + n))) routes=$(addr $((6221 + n)))" ;;
	esac
}

# all_ports NAME: "port kind" lines for every listener of NAME.
all_ports() {
	local kv
	echo "$(http_addr "$1" | cut -d: -f2) http"
	for kv in $(other_addrs "$1"); do echo "${kv##*:} ${kv%%=*}"; done
}

is_member() { local n; for n in "${NAMES[@]}"; do [[ $n == "$1" ]] && return 0; done; return 1; }

list() { local IFS=,; echo "$*"; }
nats_urls() { local n out=(); for n in 1 2 3; do out+=("nats://$(addr $((4221 + n)))"); done; list "${out[@]}"; }
nats_routes() { local n out=(); for n in 1 2 3; do out+=("nats-route://$(addr $((6221 + n)))"); done; list "${out[@]}"; }
gossip_seeds() { local n out=(); for n in 1 2 3; do out+=("$(addr $((7945 + n)))"); done; list "${out[@]}"; }

# member_args NAME: sets ARGS to NAME's pharos command line (without the binary).
member_args() {
	local name=$1 n; n=$(index "$name")
	ARGS=(-data.dir "$STATE/data/$name" -http.listen-address "$(http_addr "$name")")
	local common=(-nats.url "$(nats_urls)" -nats.stream.replicas 3 -nats.partitions "$PARTITIONS"
		-ring.replication-factor "$RF")
	case $(role "$name") in
	nats)
		ARGS+=(-target=nats -nats.embedded.server-name "$name" -nats.embedded.cluster-name pharos
			-nats.embedded.listen-address "$(addr $((4221 + n)))"
			-nats.embedded.cluster-listen-address "$(addr $((6221 + n)))"
			-nats.embedded.routes "$(nats_routes)") ;;
	aggregator)
		ARGS+=(-target=aggregator "${common[@]}" -ring.instance-id "$name"
			-memberlist.bind-address "$(addr $((7945 + n)))" -memberlist.join "$(gossip_seeds)") ;;
	query)
		ARGS+=(-target=query "${common[@]}"
			-memberlist.bind-address "$(addr 7949)" -memberlist.join "$(gossip_seeds)") ;;
	agent)
		ARGS+=(-target=agent "${common[@]}" -agent.id "$name" -scrape.config-file "$STATE/scrape/$name.yml"
			-otlp.grpc.listen-address "$(addr $((4317 + 2 * (n - 1))))"
			-otlp.http.listen-address "$(addr $((4318 + 2 * (n - 1))))") ;;
	esac
	ARGS+=("${EXTRA_ARGS[@]}")
}

# write_scrape_configs: each member's /metrics is scraped by exactly one
# agent (a target scraped by two would get two interleaved sample streams).
# agent-1: itself and the aggregators; agent-2: itself, NATS and the querier.
write_scrape_configs() {
	mkdir -p "$STATE/scrape"
	local agent job members m
	for agent in "${AGENTS[@]}"; do
		{
			printf '# Written by deploy/local/cluster.sh up.\nglobal:\n  scrape_interval: %s\nscrape_configs:\n' "$SCRAPE_INTERVAL"
			for job in agent aggregator nats query; do
				case $agent/$job in
				*/agent) members=("$agent") ;;
				agent-1/aggregator) members=("${AGGREGATORS[@]}") ;;
				agent-2/nats) members=("${NATS_NODES[@]}") ;;
				agent-2/query) members=("${QUERIERS[@]}") ;;
				*) continue ;;
				esac
				printf '  - job_name: pharos-%s\n    static_configs:\n' "$job"
				for m in "${members[@]}"; do
					printf '      - targets: ["%s"]\n        labels: {member: "%s"}\n' "$(http_addr "$m")" "$m"
				done
			done
		} >"$STATE/scrape/$agent.yml"
	done
}

# ---------------------------------------------------------------------------
# Processes. A member's pid file holds the pid of the process itself (it
# writes it before exec'ing pharos); the pid counts as ours only while the
# process's command line holds its data directory.

pid_file() { echo "$STATE/pids/$1.pid"; }

# member_pid NAME: prints the pid of NAME if it runs (and is ours); else fails.
member_pid() {
	local f pid state
	f=$(pid_file "$1")
	[[ -s $f ]] || return 1
	pid=$(<"$f")
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	state=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1) || return 1
	[[ -n $state && $state != Z && $state != X ]] || return 1 # a zombie has exited
	tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -qxF "$STATE/data/$1" || return 1
	echo "$pid"
}

is_ready() { curl -fsS --max-time 2 -o /dev/null "http://$(http_addr "$1")/ready" 2>/dev/null; }

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# check_ports NAME...: fails naming every port that is already taken.
check_ports() {
	local name p kind taken=()
	for name in "$@"; do
		while read -r p kind; do
			port_in_use "$p" && taken+=("$p ($name $kind)")
		done < <(all_ports "$name")
	done
	if ((${#taken[@]})); then
		log "ports already in use:"
		printf '  %s\n' "${taken[@]}" >&2
		log "is the all-in-one or another cluster running? (PHAROS_CLUSTER_PORT_OFFSET moves every port)"
		return 1
	fi
}

launch() {
	local name=$1 pidf
	pidf=$(pid_file "$name")
	member_args "$name"
	mkdir -p "$STATE/data/$name" "$STATE/logs" "$STATE/pids"
	rm -f "$pidf"
	# Every PHAROS_* variable is dropped from the member's environment.
	local unset_env=() v
	for v in $(compgen -e); do [[ $v == PHAROS_* ]] && unset_env+=(-u "$v"); done
	# setsid: a session of its own, so a terminal's SIGHUP/SIGINT (SIGHUP
	# reloads pharos) does not reach it after `up` returns.
	setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' launch "$pidf" \
		env "${unset_env[@]}" "$BIN" "${ARGS[@]}" </dev/null >>"$STATE/logs/$name.log" 2>&1 &
	local i
	for i in $(seq 50); do [[ -s $pidf ]] && break; sleep 0.1; done
	[[ -s $pidf ]] || die "$name: no pid file after 5 s"
}

fail_not_ready() {
	local name=$1 why=$2 body
	body=$(curl -sS --max-time 2 "http://$(http_addr "$name")/ready" 2>&1 | head -c 300 || true)
	log "$name $why (GET /ready: ${body:-no answer})"
	log "last lines of $STATE/logs/$name.log:"
	tail -n 25 "$STATE/logs/$name.log" >&2 || true
}

# wait_ready NAME...: polls /ready of every NAME until all answer 200, for
# READY_TIMEOUT seconds; on failure shows the log tail of each that is not.
wait_ready() {
	local deadline=$((SECONDS + READY_TIMEOUT)) name pending=("$@") left
	while ((${#pending[@]})); do
		left=()
		for name in "${pending[@]}"; do
			if ! member_pid "$name" >/dev/null; then
				fail_not_ready "$name" "exited"
				return 1
			fi
			if is_ready "$name"; then
				log "$name ready"
			else
				left+=("$name")
			fi
		done
		pending=("${left[@]}")
		((${#pending[@]})) || break
		if ((SECONDS >= deadline)); then
			for name in "${pending[@]}"; do fail_not_ready "$name" "not ready within ${READY_TIMEOUT}s"; done
			return 1
		fi
		sleep 0.5
	done
}

# stop NAME...: SIGTERM each running member, wait up to 15 s for all, then
# SIGKILL the stragglers. Removes their pid files.
stop() {
	local name pid running=() deadline entry
	for name in "$@"; do
		pid=$(member_pid "$name") || { rm -f "$(pid_file "$name")"; continue; }
		kill -TERM "$pid" 2>/dev/null || true
		running+=("$name:$pid")
	done
	deadline=$((SECONDS + 15))
	for entry in "${running[@]}"; do
		name=${entry%%:*}; pid=${entry##*:}
		while member_pid "$name" >/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
		if member_pid "$name" >/dev/null; then
			log "$name (pid $pid) still running 15 s after SIGTERM: SIGKILL"
			kill -KILL "$pid" 2>/dev/null || true
			for _ in $(seq 100); do member_pid "$name" >/dev/null || break; sleep 0.1; done
		else
			log "$name (pid $pid) stopped"
		fi
		rm -f "$(pid_file "$name")"
	done
}

print_table() {
	local name pid
	printf '%-14s %-8s %-22s %s\n' NAME PID HTTP OTHER
	for name in "$@"; do
		pid=$(member_pid "$name") || pid=-
		printf '%-14s %-8s %-22s %s\n' "$name" "$pid" "$(http_addr "$name")" "$(other_addrs "$name")"
	done
}

# ---------------------------------------------------------------------------
# Commands.

cmd_up() {
	need_tools
	load_settings fresh
	local name running=()
	for name in "${NAMES[@]}"; do member_pid "$name" >/dev/null && running+=("$name"); done
	((${#running[@]} == 0)) || die "already running in $STATE: ${running[*]} ('$0 status', '$0 down')"
	check_ports "${NAMES[@]}" || die "not starting"
	if [[ -f $ENV_FILE && -d $STATE/data ]]; then
		local before
		before=$(. "$ENV_FILE" && echo "$PARTITIONS")
		[[ $before == "$PARTITIONS" ]] ||
			die "$STATE/data was written with $before partitions, not $PARTITIONS: remove $STATE/data (all data) or keep PHAROS_CLUSTER_PARTITIONS=$before"
	fi
	mkdir -p "$STATE"
	if [[ -z $BIN ]]; then
		BIN=$STATE/bin/pharos
		log "building $BIN from $ROOT"
		(cd "$ROOT" && go build -o "$BIN" ./cmd/pharos) || die "go build failed"
	fi
	[[ -x $BIN ]] || die "PHAROS_BIN=$BIN is not an executable"
	save_settings
	write_scrape_configs

	# If `up` fails or is interrupted, it stops what it started: it leaves
	# a ready cluster or none (the logs stay).
	UP_DONE=0
	trap 'if ((UP_DONE == 0)); then log "up failed: stopping what it started (logs in $STATE/logs)"; stop_all; fi' EXIT
	trap 'exit 130' INT TERM
	log "starting ${#NAMES[@]} processes (RF $RF, $PARTITIONS partitions, port offset $OFFSET) in $STATE"
	for name in "${NAMES[@]}"; do launch "$name"; done
	wait_ready "${NAMES[@]}" || exit 1
	UP_DONE=1
	trap - EXIT INT TERM
	echo
	print_table "${NAMES[@]}"
	echo
	echo "Prometheus API: http://$(http_addr query-1)   OTLP: $(other_addrs agent-1)"
	echo "state: $STATE   logs: $STATE/logs/NAME.log"
}

# stop_all: agents first (they flush into NATS), then queriers and
# aggregators (they ack what they consumed), NATS last.
stop_all() {
	stop "${AGENTS[@]}"
	stop "${QUERIERS[@]}" "${AGGREGATORS[@]}"
	stop "${NATS_NODES[@]}"
}

cmd_down() {
	load_settings saved
	stop_all
}

cmd_kill() {
	local name=$1 pid i
	load_settings saved
	is_member "$name" || die "unknown member $name (one of: ${NAMES[*]})"
	pid=$(member_pid "$name") || die "$name is not running"
	kill -KILL "$pid"
	for i in $(seq 100); do member_pid "$name" >/dev/null || break; sleep 0.1; done
	member_pid "$name" >/dev/null && die "$name (pid $pid) still there 10 s after SIGKILL"
	rm -f "$(pid_file "$name")"
	log "$name (pid $pid) killed"
}

cmd_start() {
	local name=$1
	need_tools
	load_settings saved
	is_member "$name" || die "unknown member $name (one of: ${NAMES[*]})"
	member_pid "$name" >/dev/null && die "$name is already running"
	check_ports "$name" || die "not starting $name"
	launch "$name"
	wait_ready "$name" || { stop "$name"; die "$name did not become ready"; }
	print_table "$name"
}

# align: tab-separated lines as columns, indented by four spaces.
align() {
	awk -F'\t' '{ for (i = 1; i <= NF; i++) { c[NR, i] = $i; if (length($i) > w[i]) w[i] = length($i) } if (NF > n) n = NF }
		END { for (r = 1; r <= NR; r++) { line = "   "; for (i = 1; i <= n; i++) line = line " " sprintf("%-" w[i] "s ", c[r, i]); sub(/ +$/, "", line); print line } }'
}

cmd_status() {
	need_tools
	load_settings saved
	local name pid state ready=0 json src=
	echo "processes ($STATE)"
	printf '  %-14s %-8s %-10s %s\n' NAME PID STATE HTTP
	for name in "${NAMES[@]}"; do
		if pid=$(member_pid "$name"); then
			if is_ready "$name"; then state=ready; ready=$((ready + 1)); else state=not-ready; fi
		else
			pid=- state=down
		fi
		printf '  %-14s %-8s %-10s %s\n' "$name" "$pid" "$state" "$(http_addr "$name")"
	done
	echo "  $ready of ${#NAMES[@]} ready"

	# The ring as the querier sees it (or, with the querier down, an aggregator).
	for name in "${QUERIERS[@]}" "${AGGREGATORS[@]}"; do
		json=$(curl -fsS --max-time 5 "http://$(http_addr "$name")/cluster/status" 2>/dev/null) && { src=$name; break; }
	done
	echo
	if [[ -z $src ]]; then
		echo "ring: no querier or aggregator answers /cluster/status"
		return 0
	fi
	echo "ring members (as $src sees them)"
	jq -r '(["ID","ADDR","STATE","HEALTHY","LAST HEARTBEAT"] | @tsv),
		(.members | sort_by(.id)[] | [.id, .addr, .state, (if .healthy then "yes" else "NO" end), .last_heartbeat] | @tsv)' <<<"$json" | align
	jq -r '"  ring: \(.members | length) members, \([.members[] | select(.healthy)] | length) healthy"' <<<"$json"
	echo
	echo "partition owners (RF $(jq -r .replication_factor <<<"$json"), $(jq -r .partitions <<<"$json") partitions; owner per replica)"
	jq -r '(["PARTITION", "OWNERS"] | @tsv),
		(.owners | to_entries | sort_by(.key | tonumber)[] | [.key, (.value | map(if . == "" then "-" else . end) | join(" "))] | @tsv)' <<<"$json" | align
	jq -r '"  owners: \([.owners[] | select(all(. != ""))] | length)/\(.partitions) partitions fully owned"' <<<"$json"
	echo
	echo "consumers of metrics (each aggregator's own view; lag = messages not yet acknowledged)"
	local rows=() total=0 agg_json
	for name in "${AGGREGATORS[@]}"; do
		if ! agg_json=$(curl -fsS --max-time 10 "http://$(http_addr "$name")/cluster/status" 2>/dev/null); then
			rows+=("$name"$'\t'"-"$'\t'"-"$'\t'"(no answer)")
			continue
		fi
		while IFS= read -r line; do rows+=("$line"); total=$((total + 1)); done < <(
			jq -r --arg a "$name" '.consumers // [] | map(select((.signal // "metrics") == "metrics")) | sort_by(.partition, .replica)[] |
				[$a, .partition, .replica, (if .error then "error: " + .error else .lag end)] | map(tostring) | @tsv' <<<"$agg_json")
	done
	{ printf 'AGGREGATOR\tPARTITION\tREPLICA\tLAG\n'; printf '%s\n' "${rows[@]}"; } | align
	echo "  consumers: $total partition-replicas consumed (want $(($(jq -r '.partitions * .replication_factor' <<<"$json"))))"
}

cmd_ports() {
	load_settings fresh
	local name p kind
	for name in "${NAMES[@]}"; do
		while read -r p kind; do echo "$name $kind $p"; done < <(all_ports "$name")
	done
}

case ${1:-} in
up) cmd_up ;;
down) cmd_down ;;
status) cmd_status ;;
kill) [[ $# == 2 ]] || usage; cmd_kill "$2" ;;
start) [[ $# == 2 ]] || usage; cmd_start "$2" ;;
ports) cmd_ports ;;
*) usage ;;
esac
