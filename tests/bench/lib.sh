# shellcheck shell=bash
# lib.sh - what the benchmarks' run.sh scripts share (sourced): stopping by
# PID, the build in its own process group, the cleanup trap, the gateway's
# "listening on" line. The script sets ROOT and, as it goes, the globals
# WORK (its work dir), STATE (dev services), BUILD_PID, GW_PID, BENCH_PID,
# and SCRATCH (paths removed at the end even when WORK is kept).

WORK='' STATE='' BUILD_PID='' GW_PID='' BENCH_PID='' SCRATCH=''

die() {
	echo "run.sh: $*" >&2
	exit 1
}

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

# Stop what was started, by PID, newest first; keep WORK when the run failed
# or BENCH_KEEP is set.
bench_cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	if [ -n "$BUILD_PID" ]; then
		kill -TERM -- "-$BUILD_PID" 2>/dev/null || true
		wait "$BUILD_PID" 2>/dev/null || true
	fi
	if [ -n "$BENCH_PID" ]; then stop_pid "$BENCH_PID"; fi
	if [ -n "$GW_PID" ]; then stop_pid "$GW_PID"; fi
	if [ -n "$STATE" ]; then "$ROOT/deploy/devservices.sh" destroy "$STATE" >/dev/null 2>&1 || true; fi
	if [ -n "$WORK" ]; then
		# shellcheck disable=SC2086 # SCRATCH is a list of paths without spaces
		[ -z "$SCRATCH" ] || rm -rf $SCRATCH
		if [ "$rc" -ne 0 ] || [ -n "${BENCH_KEEP:-}" ]; then
			echo "run.sh: kept $WORK (build.log, services.log, gw/ehrgate.ini, gw/serve.log, gw/setup.log)" >&2
		else
			rm -rf "$WORK"
		fi
	fi
	exit "$rc"
}

bench_traps() {
	trap bench_cleanup EXIT
	trap 'echo "run.sh: interrupted" >&2; exit 130' INT
	trap 'echo "run.sh: terminated" >&2; exit 143' TERM
}

# bench_build BUILD_DIR TARGET: configure (RelWithDebInfo) and build TARGET
# into WORK/build.log, in its own process group, in the background + wait,
# so that a signal reaches the trap at once and cleanup can stop the build.
bench_build() {
	# shellcheck disable=SC2016 # $1..$3 are the inner shell's arguments
	setsid bash -c 'cmake -S "$1" -B "$2" -DCMAKE_BUILD_TYPE=RelWithDebInfo && cmake --build "$2" -j2 --target "$3"' \
		build "$ROOT" "$1" "$2" >"$WORK/build.log" 2>&1 </dev/null &
	BUILD_PID=$!
	wait "$BUILD_PID" || { tail -n 30 "$WORK/build.log" >&2; die "build failed"; }
	BUILD_PID=
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
