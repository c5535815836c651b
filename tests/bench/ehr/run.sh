#!/usr/bin/env bash
# run.sh - build the EHR load benchmark, start fresh dev services (Postgres)
# and one gateway on the fs store for it, run it, then stop the gateway and
# the services by PID. The stop also happens when a step fails and on
# Ctrl-C / SIGTERM.
#
#   tests/bench/ehr/run.sh [bench_ehr options: -d SECONDS -n N,N.. -s BYTES,BYTES..]
#
# Defaults: 5 s per phase, N = 32 and 256, 4 KiB and 64 KiB records.
# Under each gateway phase bench_ehr prints a second line: Postgres CPU per
# request (the postmaster's PID, from the cluster's postmaster.pid, goes to
# it as EHRGATE_BENCH_PG_PID), the machine's idle share, and the ledger and
# pool counters of the gateway's metrics listener (URL in serve.out).
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

bench_traps

WORK=$(mktemp -d /tmp/ehr-bench-ehr.XXXXXX)

bench_build "$B" bench_ehr
SCRATCH="$WORK/gw/objects $WORK/floor"

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

# The postmaster (first line of postmaster.pid): bench_ehr sums the CPU of
# it and its backends. Without it the bench only leaves that figure out.
PGDATA_DIR=$(psql "$EHRGATE_TEST_PG" -tAc "SHOW data_directory" 2>/dev/null || true)
PG_PID=
[ -z "$PGDATA_DIR" ] || PG_PID=$(head -n 1 "$PGDATA_DIR/postmaster.pid" 2>/dev/null || true)

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
export EHRGATE_BENCH_PG_PID=$PG_PID
"$B/tests/bench/ehr/bench_ehr" "$@" </dev/null &
BENCH_PID=$!
wait "$BENCH_PID" || die "bench_ehr exited with status $?"
BENCH_PID=
alive "$GW_PID" || die "the gateway died during the run (see $GW/serve.log)"
