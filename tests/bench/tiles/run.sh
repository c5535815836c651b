#!/usr/bin/env bash
# tests/bench/tiles/run.sh - C2SP tlog-tiles reads/s from `ehrgate serve`
# against nginx (nginx-light, installed by deploy/bootstrap.sh) serving the
# same tile bytes from files, in the same run (bench_tiles.c says how).
#   tests/bench/tiles/run.sh [entries] [seconds-per-round]
# Without EHRGATE_TEST_PG it starts the dev services for the run.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
BUILD=${BENCH_BUILD:-$ROOT/build-bench}
for tool in wrk nginx; do
	command -v "$tool" >/dev/null || { echo "bench: $tool is not installed (deploy/bootstrap.sh)" >&2; exit 2; }
done
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" -j2 --target bench_tiles ehrgate >/dev/null
export EHRGATE_SOURCE_DIR=$ROOT EHRGATE_BIN=$BUILD/gateway/ehrgate
if [ -z "${EHRGATE_TEST_PG:-}" ]; then
	STATE=$(mktemp -d /tmp/ehrbench.XXXX)
	"$ROOT/deploy/devservices.sh" start "$STATE" --no-s3 >/dev/null
	# shellcheck disable=SC1091
	. "$STATE/services.env"
	trap '"$ROOT/deploy/devservices.sh" stop "$STATE" >/dev/null 2>&1 || true' EXIT
fi
"$BUILD/tests/bench/tiles/bench_tiles" "$@"
