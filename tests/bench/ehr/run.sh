#!/usr/bin/env bash
# run.sh - build the EHR load benchmark, start fresh dev services (Postgres)
# and one gateway on the fs store for it, run it, then stop the gateway and
# the services by PID. The stop also happens when a step fails and on
# Ctrl-C / SIGTERM.
#
#   tests/bench/ehr/run.sh [bench_ehr options: -d SECONDS -n N,N.. -s BYTES,BYTES..]
#
# Defaults: 5 s per phase, N = 32 and 256, 4 KiB and 64 KiB records.
# Env: BENCH_BUILD=DIR  the build dir (default: build; RelWithDebInfo)
#      BENCH_GATEWAY_BIN=PATH  the ehrgate to benchmark (default: the build's),
#                      e.g. an earlier commit's, measured by this build's client
#      BENCH_WORKERS=N  [server] workers of the gateway (default: its own default)
#      BENCH_KEEP=1    keep the work dir (gateway config and logs) afterwards;
#                      it is always kept when the run fails
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
# shellcheck source=tests/bench/lib.sh
. "$ROOT/tests/bench/lib.sh"
B=${BENCH_BUILD:-$ROOT/build}
GWBIN=${BENCH_GATEWAY_BIN:-$B/gateway/ehrgate}
export EHRGATE_BIN=$GWBIN # the bench's `ehrgate admin` calls use the same one

WORK='' STATE='' BUILD_PID='' GW_PID='' BENCH_PID=''
cleanup() {
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
		rm -rf "$WORK/gw/objects" "$WORK/floor"
		if [ "$rc" -ne 0 ] || [ -n "${BENCH_KEEP:-}" ]; then
			echo "run.sh: kept $WORK (build.log, services.log, gw/ehrgate.ini, gw/serve.log, gw/setup.log)" >&2
		else
			rm -rf "$WORK"
		fi
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'echo "run.sh: interrupted" >&2; exit 130' INT
trap 'echo "run.sh: terminated" >&2; exit 143' TERM
die() {
	echo "run.sh: $*" >&2
	exit 1
}

WORK=$(mktemp -d /tmp/ehr-bench-ehr.XXXXXX)

# Build in its own process group, in the background + wait, so that a signal
# reaches the trap at once and cleanup can stop the whole build.
# shellcheck disable=SC2016 # $1 and $2 are the inner shell's arguments
setsid bash -c 'cmake -S "$1" -B "$2" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null && cmake --build "$2" -j2 --target bench_ehr' \
	build "$ROOT" "$B" >"$WORK/build.log" 2>&1 </dev/null &
BUILD_PID=$!
wait "$BUILD_PID" || { tail -n 30 "$WORK/build.log" >&2; die "build failed"; }
BUILD_PID=

STATE=$WORK/services
"$ROOT/deploy/devservices.sh" start "$STATE" --no-s3 >"$WORK/services.log" 2>&1 ||
	{ tail -n 30 "$WORK/services.log" >&2; die "dev services did not start"; }
# shellcheck disable=SC1091
. "$STATE/services.env"
# pgbench at N = 256 needs more than the dev services' 200 connections.
psql "$EHRGATE_TEST_PG" -qc "ALTER SYSTEM SET max_connections = 600" >/dev/null
"$ROOT/deploy/devservices.sh" stop-pg "$STATE" >>"$WORK/services.log" 2>&1
"$ROOT/deploy/devservices.sh" start-pg "$STATE" >>"$WORK/services.log" 2>&1 ||
	{ tail -n 30 "$WORK/services.log" >&2; die "Postgres did not restart"; }

# The gateway: its own keys, database and config, fs store under $WORK/gw.
GW=$WORK/gw
mkdir -p "$GW" "$WORK/floor"
"$GWBIN" init --state-dir "$GW/state" >/dev/null
psql "$EHRGATE_TEST_PG" -v ON_ERROR_STOP=1 -qc "CREATE DATABASE ehrbench" >/dev/null
psql "$EHRGATE_TEST_PG dbname=ehrbench" -v ON_ERROR_STOP=1 -qc \
	"CREATE TABLE bench_floor (id bigserial PRIMARY KEY, payload text NOT NULL)" >/dev/null
WORKERS_LINE=
[ -z "${BENCH_WORKERS:-}" ] || WORKERS_LINE="workers = $BENCH_WORKERS"
(
	umask 077
	cat >"$GW/ehrgate.ini" <<INI
[server]
state_dir = $GW/state
listen = 127.0.0.1:0
$WORKERS_LINE
[database]
url = $EHRGATE_TEST_PG dbname=ehrbench user=ehrgate_app
admin_url = $EHRGATE_TEST_PG dbname=ehrbench
[log]
level = warn
[store]
backend = fs
fs_path = $GW/objects
[auth]
rate_register_per_min = 1000000
rate_enroll_per_min = 1000000
rate_challenge_per_min = 1000000
rate_token_per_min = 1000000
rate_burst = 1000000
INI
)
"$GWBIN" migrate -c "$GW/ehrgate.ini" >/dev/null
EHRGATE_METRICS_LISTEN=127.0.0.1:0 "$GWBIN" serve -c "$GW/ehrgate.ini" >"$GW/serve.out" 2>"$GW/serve.log" </dev/null &
GW_PID=$!
URL=$(wait_listening "$GW_PID" "$GW/serve.out") || die "the gateway did not start listening (see $GW/serve.log)"
echo "run.sh: gateway $URL (pid $GW_PID, $GWBIN), fs store $GW/objects; build $B"

export EHRGATE_BENCH_GW_DIR=$GW EHRGATE_BENCH_GW_URL=$URL EHRGATE_BENCH_GW_PID=$GW_PID
export EHRGATE_BENCH_FS_DIR=$WORK/floor EHRGATE_BENCH_PGBENCH="$EHRGATE_TEST_PG dbname=ehrbench"
"$B/tests/bench/ehr/bench_ehr" "$@" </dev/null &
BENCH_PID=$!
wait "$BENCH_PID" || die "bench_ehr exited with status $?"
BENCH_PID=
alive "$GW_PID" || die "the gateway died during the run (see $GW/serve.log)"
