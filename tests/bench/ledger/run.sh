#!/usr/bin/env bash
# tests/bench/ledger/run.sh - build (RelWithDebInfo) and run the ledger benchmark.
#   EHRGATE_TEST_PG=<superuser conninfo> tests/bench/ledger/run.sh [seconds-per-run] [entries-to-verify]
# Without EHRGATE_TEST_PG it starts the dev services (deploy/devservices.sh)
# for the run and stops them afterwards. BASELINE_BENCH=<an older
# bench_ledger> runs it too, on the same services, alternating with this one
# (baseline, new, new, baseline), so a change is judged within one run; each
# program measures its own raw-Postgres baselines, so compare their ratios.
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
if [ -z "${BASELINE_BENCH:-}" ]; then
	"$BUILD/tests/bench/ledger/bench_ledger" "$@"
	exit
fi
for which in baseline new new baseline; do
	bin=$BUILD/tests/bench/ledger/bench_ledger
	[ "$which" = baseline ] && bin=$BASELINE_BENCH
	echo "==== $which: $bin"
	"$bin" "$@"
done
