#!/usr/bin/env bash
# run.sh - build the storage benchmark, start fresh dev services and one
# gateway for it, run it, then stop the gateway and the services by PID. The
# stop also happens when a step fails and on Ctrl-C / SIGTERM.
#
#   tests/bench/storage/run.sh [BUILD_DIR]      (default: build; RelWithDebInfo)
#
# Env: BENCH_S3=direct|front  the S3 endpoint the gateway is configured with:
#        direct (default): s3rver itself; front: the SigV4-verifying front.
#        bench_storage reads the endpoint back from the gateway's ini and sends
#        its direct baseline to the same one, so both sides share the S3 path.
#      BENCH_ROUNDS=N  rounds per figure, 1..31 (default 5)
#      BENCH_GATEWAY_BIN=PATH  the ehrgate to benchmark (default: the build's):
#                      e.g. an earlier commit's build, measured by this
#                      build's bench_storage and its direct baseline, so a
#                      change to the gateway is judged with the same client
#      BENCH_KEEP=1    keep the work dir (gateway config and log) afterwards;
#                      it is always kept when the run fails
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
B=${1:-$ROOT/build}
GWBIN=${BENCH_GATEWAY_BIN:-$B/gateway/ehrgate}
export EHRGATE_BIN=$GWBIN # bench_storage's `ehrgate admin` calls use the same one
S3=${BENCH_S3:-direct}
case $S3 in
direct | front) ;;
*) echo "run.sh: BENCH_S3 must be direct or front" >&2; exit 2 ;;
esac

WORK='' STATE='' BUILD_PID='' GW_PID='' BENCH_PID=''

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
		rm -rf "$WORK/tmp" # the fs benchmark's records and KEK, if it was stopped
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

WORK=$(mktemp -d /tmp/ehr-bench-storage.XXXXXX)

# Build in its own process group, in the background + wait, so that a signal
# reaches the trap at once and cleanup can stop the whole build.
# shellcheck disable=SC2016 # $1 and $2 are the inner shell's arguments
setsid bash -c 'cmake -S "$1" -B "$2" -DCMAKE_BUILD_TYPE=RelWithDebInfo && cmake --build "$2" -j2 --target bench_storage' \
	build "$ROOT" "$B" >"$WORK/build.log" 2>&1 </dev/null &
BUILD_PID=$!
wait "$BUILD_PID" || { tail -n 30 "$WORK/build.log" >&2; die "build failed"; }
BUILD_PID=

STATE=$WORK/services
"$ROOT/deploy/devservices.sh" start "$STATE" >"$WORK/services.log" 2>&1 ||
	{ tail -n 30 "$WORK/services.log" >&2; die "dev services did not start"; }
# shellcheck disable=SC1091
. "$STATE/services.env"

# The gateway: its own keys, database and config, S3 store at the chosen endpoint.
GW=$WORK/gw
mkdir -p "$GW"
if [ "$S3" = front ]; then ENDPOINT=$EHRGATE_TEST_S3; else ENDPOINT=$EHRGATE_TEST_S3_DIRECT; fi
"$GWBIN" init --state-dir "$GW/state" >/dev/null
psql "$EHRGATE_TEST_PG" -v ON_ERROR_STOP=1 -qc "CREATE DATABASE ehrbench" >/dev/null
(
	umask 077
	cat >"$GW/ehrgate.ini" <<INI
[server]
state_dir = $GW/state
listen = 127.0.0.1:0
workers = 2
max_body_bytes = 104857600
[database]
url = $EHRGATE_TEST_PG dbname=ehrbench user=ehrgate_app
admin_url = $EHRGATE_TEST_PG dbname=ehrbench
pool_size = 8
[log]
level = warn
[store]
backend = s3
s3_endpoint = $ENDPOINT
s3_bucket = $EHRGATE_TEST_S3_BUCKET
s3_region = $EHRGATE_TEST_S3_REGION
s3_access_key = $EHRGATE_TEST_S3_ACCESS_KEY
s3_secret_key = $EHRGATE_TEST_S3_SECRET_KEY
key_prefix = bench/
INI
)
"$GWBIN" migrate -c "$GW/ehrgate.ini" >/dev/null
# a free metrics port (an environment variable: an older BENCH_GATEWAY_BIN ignores it)
EHRGATE_METRICS_LISTEN=127.0.0.1:0 "$GWBIN" serve -c "$GW/ehrgate.ini" >"$GW/serve.out" 2>"$GW/serve.log" </dev/null &
GW_PID=$!
URL=
for _ in $(seq 200); do
	URL=$(awk '/listening on/ {print $4; exit}' "$GW/serve.out")
	[ -n "$URL" ] && break
	alive "$GW_PID" || die "the gateway exited at start (see $GW/serve.log)"
	sleep 0.05
done
[ -n "$URL" ] || die "the gateway did not start listening (see $GW/serve.log)"
echo "run.sh: gateway $URL (pid $GW_PID, $GWBIN), S3 store $S3: $ENDPOINT; build $B"

export EHRGATE_BENCH_GW_DIR=$GW EHRGATE_BENCH_GW_URL=$URL EHRGATE_BENCH_GW_PID=$GW_PID
export EHRGATE_BENCH_ROUNDS=${BENCH_ROUNDS:-5} EHRGATE_BENCH_TMP=$WORK/tmp
mkdir -p "$EHRGATE_BENCH_TMP"
"$B/tests/bench/storage/bench_storage" </dev/null &
BENCH_PID=$!
wait "$BENCH_PID" || die "bench_storage exited with status $?"
BENCH_PID=
alive "$GW_PID" || die "the gateway died during the run (see $GW/serve.log)"
