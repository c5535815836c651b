#!/usr/bin/env bash
# check-layers.sh - dependencies go one way (issue 11, scripts/layers.conf).
#   1. the module table in layers.conf is acyclic (a cycle is printed);
#   2. every #include "x/y.h" under the product modules names its own
#      module's headers or an allowed module's public header (not *_internal.h);
#   3. every CMake target's links follow the same table, and the link closures
#      in [forbid-link] (libehrclient, ehrctl, the pure halves) have no libpq,
#      commondb, ledger store... The graph comes from `cmake --graphviz` in a
#      throwaway build directory: configure only, no compile.
# Options: --no-links skips 3 (no cmake needed).
# EHR_LAYERS_BUILD=DIR reuses DIR for the configure (default: a directory
# under ${TMPDIR:-/tmp} kept between runs, so a second run takes a second or two).
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
links=1
[ "${1:-}" = "--no-links" ] && links=0

args=("$ROOT" "$ROOT/scripts/layers.conf")
if [ "$links" = 1 ]; then
	key=$(printf '%s' "$ROOT" | cksum | cut -d' ' -f1)
	dir=${EHR_LAYERS_BUILD:-${TMPDIR:-/tmp}/ehrgate-layers-$(id -u)-$key}
	mkdir -p "$dir"
	rm -f "$dir"/graph.dot*
	if ! cmake -S "$ROOT" -B "$dir" -DCMAKE_BUILD_TYPE=Release --graphviz="$dir/graph.dot" \
		>"$dir/configure.log" 2>&1; then
		echo "  cmake configure failed (see $dir/configure.log)"
		exit 1
	fi
	args+=("$dir/graph.dot")
fi
python3 "$ROOT/scripts/check_layers.py" "${args[@]}"
