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
# shellcheck source=tests/bench/lib.sh
. "$ROOT/tests/bench/lib.sh"
B=${1:-$ROOT/build}
GWBIN=${BENCH_GATEWAY_BIN:-$B/gateway/ehrgate}
export EHRGATE_BIN=$GWBIN # bench_storage's `ehrgate admin` calls use the same one
S3=${BENCH_S3:-direct}
case $S3 in
direct | front) ;;
*) echo "run.sh: BENCH_S3 must be direct or front" >&2; exit 2 ;;
esac

bench_traps

WORK=$(mktemp -d /tmp/ehr-bench-storage.XXXXXX)

bench_build "$B" bench_storage
SCRATCH=$WORK/tmp # the fs benchmark's records and KEK, if it was stopped

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
URL=$(wait_listening "$GW_PID" "$GW/serve.out") || die "the gateway did not start listening (see $GW/serve.log)"
echo "run.sh: gateway $URL (pid $GW_PID, $GWBIN), S3 store $S3: $ENDPOINT; build $B"

export EHRGATE_BENCH_GW_DIR=$GW EHRGATE_BENCH_GW_URL=$URL EHRGATE_BENCH_GW_PID=$GW_PID
export EHRGATE_BENCH_ROUNDS=${BENCH_ROUNDS:-5} EHRGATE_BENCH_TMP=$WORK/tmp
mkdir -p "$EHRGATE_BENCH_TMP"
"$B/tests/bench/storage/bench_storage" </dev/null &
BENCH_PID=$!
wait "$BENCH_PID" || die "bench_storage exited with status $?"
BENCH_PID=
alive "$GW_PID" || die "the gateway died during the run (see $GW/serve.log)"
