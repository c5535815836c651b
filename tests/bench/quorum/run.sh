#!/usr/bin/env bash
# tests/bench/quorum/run.sh - build (RelWithDebInfo) and run the publication
# benchmark: append -> quorum-published latency with three ehrwitness on
# loopback at 1,000 and 10,000 appends/s, and append throughput with the
# publisher on / off.
#   EHRGATE_TEST_PG=<superuser conninfo> tests/bench/quorum/run.sh [seconds-per-run] [rate ...]
# Without EHRGATE_TEST_PG it starts the dev services for the run.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
BUILD=${BENCH_BUILD:-$ROOT/build-bench}
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" -j2 --target bench_quorum ehrwitness ehrgate >/dev/null
export EHRGATE_SOURCE_DIR=$ROOT

if [ -z "${EHRGATE_TEST_PG:-}" ]; then
	STATE=$(mktemp -d /tmp/ehrbench.XXXX)
	"$ROOT/deploy/devservices.sh" start "$STATE" --no-s3 >/dev/null
	# shellcheck disable=SC1091
	. "$STATE/services.env"
	trap '"$ROOT/deploy/devservices.sh" stop "$STATE" >/dev/null 2>&1 || true' EXIT
fi
"$BUILD/tests/bench/quorum/bench_quorum" "$@"
