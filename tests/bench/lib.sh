# shellcheck shell=bash
# lib.sh - shell pieces the benchmarks' run.sh scripts share (sourced).

# A child that has exited but is not reaped yet counts as gone.
alive() { [ -r "/proc/$1/status" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null; }

# SIGTERM, up to 10 s to exit, then SIGKILL; always by PID.
stop_pid() {
	local pid=$1
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 100); do
		alive "$pid" || break
		sleep 0.1
	done
	if alive "$pid"; then
		echo "run.sh: pid $pid did not stop on SIGTERM; SIGKILL" >&2
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true
}

# wait_listening PID OUTFILE: the URL of serve's "listening on" line in
# OUTFILE (its stdout) on stdout, once it is there; fails if PID exits first
# or 10 s pass.
wait_listening() {
	local pid=$1 out=$2 url=
	for _ in $(seq 200); do
		url=$(awk '/listening on/ {print $4; exit}' "$out")
		[ -n "$url" ] && break
		alive "$pid" || return 1
		sleep 0.05
	done
	[ -n "$url" ] || return 1
	echo "$url"
}
