#!/usr/bin/env bash
# tests/bench/ledger/run.sh - build (RelWithDebInfo) and run the ledger benchmark.
#   EHRGATE_TEST_PG=<superuser conninfo> tests/bench/ledger/run.sh [seconds-per-run] [entries-to-verify]
# Without EHRGATE_TEST_PG it starts the dev services (deploy/devservices.sh)
# for the run and stops them afterwards.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
BUILD=${BENCH_BUILD:-$ROOT/build-bench}
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" -j2 --target bench_ledger >/dev/null
export EHRGATE_SOURCE_DIR=$ROOT
if [ -z "${EHRGATE_TEST_PG:-}" ]; then
	STATE=$(mktemp -d /tmp/ehrbench.XXXX)
	"$ROOT/deploy/devservices.sh" start "$STATE" --no-s3 >/dev/null
	# shellcheck disable=SC1091
	. "$STATE/services.env"
	trap '"$ROOT/deploy/devservices.sh" stop "$STATE" >/dev/null 2>&1 || true' EXIT
fi
"$BUILD/tests/bench/ledger/bench_ledger" "$@"
