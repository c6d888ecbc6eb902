# Shell helpers shared by the bench scripts; sourced, not run. The scripts
# set RESULTS (the report file) before calling say.

log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
say() { printf '%s\n' "$*" | tee -a "$RESULTS"; }
die() { log "FATAL: $*"; exit 1; }

# stop_pid PID NAME: SIGTERM, wait up to 60 s, then SIGKILL. Sets STOP_MSG
# to the exit status and the time the shutdown took. (Not in a subshell: only
# the shell that started the process can wait for it.)
STOP_MSG=
stop_pid() {
	local pid=$1 name=$2 t0 rc=0
	if ! kill -0 "$pid" 2>/dev/null; then
		wait "$pid" 2>/dev/null || rc=$?
		STOP_MSG="$name (pid $pid) had already exited, status $rc"
		return 0
	fi
	t0=$(date +%s.%N)
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	if kill -0 "$pid" 2>/dev/null; then
		log "$name (pid $pid) still running 60 s after SIGTERM: SIGKILL"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || rc=$?
	STOP_MSG="$name (pid $pid) stopped: exit status $rc after $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}') s"
}

# /proc and the systems' own /metrics.
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; } # utime+stime of all threads
hwm_kb() { awk '/^VmHWM:/{print $2}' "/proc/$1/status"; }
rss_kb() { awk '/^VmRSS:/{print $2}' "/proc/$1/status"; }
machine_busy() { awk '/^cpu /{idle=$5+$6; t=0; for(i=2;i<=NF;i++) t+=$i; print t-idle, t; exit}' /proc/stat; }
# metric ADDR|URL NAME [LABELMATCH]: sum of the series of NAME (containing
# LABELMATCH, if given) in ADDR/metrics, or at URL; empty if absent.
metric() {
	local url=$1
	[[ $url == http* ]] || url="http://$url/metrics"
	curl -fsS --max-time 20 "$url" 2>/dev/null |
		awk -v m="$2" -v l="${3:-}" '($1==m || index($1, m"{")==1) && index($1, l) {s+=$NF; n++} END{if(n) printf "%.0f\n", s}' || true
}
median() { sort -g | awk '{a[NR]=$1} END{if(NR==0){print "nan"; exit} if(NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
# pct P: the P-th percentile (nearest rank) of the numbers on stdin.
pct() { sort -g | awk -v p="$1" '{a[NR]=$1} END{if(NR==0){print "nan"; exit} i=int(p/100*NR+0.999999); if(i<1)i=1; if(i>NR)i=NR; print a[i]}'; }
calc() { awk "BEGIN{printf \"$1\", $2}" 2>/dev/null || echo nan; }
