#!/usr/bin/env bash
# run.sh - build and run the storage benchmark against fresh dev services.
#   tests/bench/storage/run.sh [BUILD_DIR]   (default: build)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
B=${1:-$ROOT/build}
cmake -S "$ROOT" -B "$B" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$B" -j2 --target bench_storage >/dev/null
STATE=$(mktemp -d /tmp/ehr-bench-storage.XXXXXX)
trap '"$ROOT/deploy/devservices.sh" destroy "$STATE" >/dev/null 2>&1 || true' EXIT
"$ROOT/deploy/devservices.sh" start "$STATE" >/dev/null
# shellcheck disable=SC1091
. "$STATE/services.env"
"$B/tests/bench/storage/bench_storage"
