#!/usr/bin/env bash
# tests/run.sh - THE test command: install what is missing, build, start the dev
# services, run every test binary, print the totals, exit non-zero on any failure.
#
#   ./tests/run.sh [--quick] [--filter REGEX] [--no-bootstrap] [--build-root DIR]
#
#   --quick          normal build only (skip the ASan+UBSan tree)
#   --filter REGEX   run only the test binaries whose name matches REGEX (grep -E)
#   --no-bootstrap   do not run deploy/bootstrap.sh first
#   --build-root DIR build trees go to DIR/build and DIR/build-asan (default: the repo root)
#
# Two trees are built: build/ (RelWithDebInfo) and build-asan/ (-DEHR_SANITIZE=ON:
# ASan + UBSan, LeakSanitizer on). Every test ctest knows in a tree (ctest
# --show-only; benchmarks under tests/bench/ are never run) is run one at a
# time against a fresh set of dev services (deploy/devservices.sh, new state dir
# per tree), with these exported:
#   services.env (EHRGATE_TEST_PG, EHRGATE_TEST_S3, ...), EHRGATE_BIN (gateway/ehrgate),
#   EHRGATE_CTL (client/ehrctl), EHRGATE_SOURCE_DIR, EHRGATE_DEVSERVICES (the script).
# Each binary prints "ehrgate-totals: <bin> N passed, N failed"; a binary that
# prints none, times out (EHRGATE_TEST_TIMEOUT s, default 300) or exits non-zero
# without reporting a failure (e.g. a leak found at exit) counts as 1 failed.
# The last line is "N passed, N failed" over everything.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
QUICK=0
FILTER=
BOOTSTRAP=1
BUILD_ROOT=$ROOT
TIMEOUT=${EHRGATE_TEST_TIMEOUT:-300}

while [ $# -gt 0 ]; do
	case $1 in
	--quick) QUICK=1 ;;
	--filter) FILTER=${2:?--filter needs a REGEX}; shift ;;
	--no-bootstrap) BOOTSTRAP=0 ;;
	--build-root) BUILD_ROOT=${2:?--build-root needs a directory}; shift ;;
	-h | --help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "run.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
	esac
	shift
done

cd "$ROOT" || exit 2
START=$(date +%s)
STATE=
LOGROOT=
stop_services() {
	if [ -n "$STATE" ]; then
		"$ROOT/deploy/devservices.sh" destroy "$STATE" >/dev/null 2>&1 || true
		STATE=
	fi
}
on_exit() {
	stop_services
}
CHILD=
on_signal() {
	echo "run.sh: interrupted" >&2
	[ -n "$CHILD" ] && kill -TERM "$CHILD" 2>/dev/null && wait "$CHILD" 2>/dev/null
	exit 130
}
trap on_exit EXIT
trap on_signal INT TERM

step() { echo "== $* ($(($(date +%s) - START))s)"; }

if [ "$BOOTSTRAP" = 1 ]; then
	step "bootstrap"
	"$ROOT/deploy/bootstrap.sh" || { echo "run.sh: bootstrap failed" >&2; exit 1; }
fi

TREES=(build)
[ "$QUICK" = 1 ] || TREES+=(build-asan)

build_tree() {
	local name=$1 dir=$BUILD_ROOT/$1 extra=()
	# ASan tree: -O1 (ASan's recommendation; compiles faster) and asserts kept (no -DNDEBUG).
	[ "$name" = build-asan ] && extra=(-DEHR_SANITIZE=ON "-DCMAKE_C_FLAGS_RELWITHDEBINFO=-O1 -g")
	step "configure and build $dir"
	cmake -S "$ROOT" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "${extra[@]}" >"$LOGROOT/$name.cmake.log" 2>&1 &&
		cmake --build "$dir" -j2 -- -k >>"$LOGROOT/$name.cmake.log" 2>&1
}

# name<TAB>command...<TAB>workdir, one per test that ctest knows
list_tests() {
	ctest --test-dir "$1" --show-only=json-v1 2>/dev/null | node -e '
		let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
			const j = JSON.parse(s || "{\"tests\":[]}");
			for (const t of j.tests || []) {
				if (!t.command) continue;
				const wd = ((t.properties || []).find((p) => p.name === "WORKING_DIRECTORY") || {}).value || "";
				console.log([t.name, JSON.stringify(t.command), wd].join("\t"));
			}
		});'
}

export ASAN_OPTIONS="halt_on_error=1:abort_on_error=0:detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1:strict_init_order=1:print_summary=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
[ -f "$ROOT/tests/lsan.supp" ] && export LSAN_OPTIONS="suppressions=$ROOT/tests/lsan.supp:print_suppressions=0"

TOTAL_PASS=0
TOTAL_FAIL=0
SUMMARY=()
LOGROOT=$(mktemp -d /tmp/ehrgate-test-logs.XXXXXX)

for tree in "${TREES[@]}"; do
	B=$BUILD_ROOT/$tree
	# A failed build counts as one failure; the tests whose binaries did build
	# still run (make -k), and a test whose binary is missing fails on its own.
	if ! build_tree "$tree"; then
		grep -E "error:|Error [0-9]" "$LOGROOT/$tree.cmake.log" | sort -u | head -30
		echo "[$tree] BUILD FAILED (log: $LOGROOT/$tree.cmake.log); running what did build"
		TOTAL_FAIL=$((TOTAL_FAIL + 1))
		SUMMARY+=("$tree: BUILD FAILED (counted as 1 failed)")
		[ -f "$B/CTestTestfile.cmake" ] || continue
	fi

	step "[$tree] start dev services"
	STATE=$(mktemp -d /tmp/ehrgate-test.XXXXXX)
	if ! "$ROOT/deploy/devservices.sh" start "$STATE" >"$LOGROOT/$tree.services.log" 2>&1; then
		cat "$LOGROOT/$tree.services.log"
		echo "[$tree] DEV SERVICES FAILED"
		TOTAL_FAIL=$((TOTAL_FAIL + 1))
		SUMMARY+=("$tree: dev services failed")
		stop_services
		continue
	fi
	# shellcheck disable=SC1091
	. "$STATE/services.env"
	export EHRGATE_BIN=$B/gateway/ehrgate EHRGATE_CTL=$B/client/ehrctl
	export EHRGATE_SOURCE_DIR=$ROOT EHRGATE_DEVSERVICES=$ROOT/deploy/devservices.sh

	tp=0
	tf=0
	n=0
	mkdir -p "$LOGROOT/$tree"
	while IFS=$'\t' read -r name cmdjson wd; do
		[ -n "$name" ] || continue
		case $cmdjson in *"/tests/bench/"*) continue ;; esac
		if [ -n "$FILTER" ] && ! printf '%s\n' "$name" | grep -Eq -- "$FILTER"; then
			continue
		fi
		mapfile -t cmd < <(node -e 'for (const a of JSON.parse(process.argv[1])) console.log(a)' "$cmdjson")
		log=$LOGROOT/$tree/$name.log
		t0=$(date +%s%N)
		# In the background + wait, so that INT/TERM reach the trap at once.
		(cd "${wd:-$B}" && exec timeout --kill-after=10 "$TIMEOUT" "${cmd[@]}") >"$log" 2>&1 </dev/null &
		CHILD=$!
		wait "$CHILD"
		rc=$?
		CHILD=
		ms=$((($(date +%s%N) - t0) / 1000000))
		dt=$((ms / 1000)).$(((ms % 1000) / 100))
		line=$(grep -E '^ehrgate-totals: [^ ]+ [0-9]+ passed, [0-9]+ failed$' "$log" | tail -1)
		note=
		if [ -z "$line" ]; then
			p=0
			f=1
			note="no totals line (exit $rc)"
			[ $rc = 124 ] || [ $rc = 137 ] && note="timed out after ${TIMEOUT}s"
		else
			p=$(echo "$line" | sed -E 's/.* ([0-9]+) passed, ([0-9]+) failed$/\1/')
			f=$(echo "$line" | sed -E 's/.* ([0-9]+) passed, ([0-9]+) failed$/\2/')
			if [ "$rc" != 0 ] && [ "$f" = 0 ]; then
				f=1
				note="exit $rc after its totals (sanitizer report at exit?)"
			fi
		fi
		n=$((n + 1))
		tp=$((tp + p))
		tf=$((tf + f))
		if [ "$f" = 0 ]; then
			printf '  PASS %-28s %4d passed, %d failed  (%ss)\n' "$name" "$p" "$f" "$dt"
		else
			printf '  FAIL %-28s %4d passed, %d failed  (%ss) %s\n' "$name" "$p" "$f" "$dt" "$note"
			echo "  ---- last lines of $log"
			grep -E "FAILED|failed|ERROR|Sanitizer|runtime error|^  [0-9]+\. " "$log" | head -30 | sed 's/^/  | /'
			tail -15 "$log" | sed 's/^/  | /'
			echo "  ----"
		fi
	done < <(list_tests "$B")
	echo "[$tree] $n binaries: $tp passed, $tf failed"
	SUMMARY+=("$tree: $n binaries, $tp passed, $tf failed")
	TOTAL_PASS=$((TOTAL_PASS + tp))
	TOTAL_FAIL=$((TOTAL_FAIL + tf))
	[ "$n" -gt 0 ] || echo "[$tree] warning: no test binary ran"
	stop_services
done

step "done (logs in $LOGROOT)"
for s in "${SUMMARY[@]}"; do echo "  $s"; done
echo "$TOTAL_PASS passed, $TOTAL_FAIL failed"
[ "$TOTAL_FAIL" = 0 ] && [ "$TOTAL_PASS" -gt 0 ]
