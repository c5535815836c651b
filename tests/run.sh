#!/usr/bin/env bash
# tests/run.sh - THE test command: install what is missing, build, start the dev
# services, run every test binary, print the totals, exit non-zero on any failure.
#
#   ./tests/run.sh [--quick] [--filter REGEX] [--jobs N] [--no-bootstrap] [--build-root DIR]
#
#   --quick          normal build only (skip the ASan+UBSan tree)
#   --filter REGEX   run only the test binaries whose name matches REGEX (grep -E)
#   --jobs N         test binaries run at once (default 2, or EHRGATE_TEST_JOBS)
#   --no-bootstrap   do not run deploy/bootstrap.sh first
#   --build-root DIR build trees go to DIR/build and DIR/build-asan (default: the repo root)
#
# Two trees are built: build/ (RelWithDebInfo) and build-asan/ (-DEHR_SANITIZE=ON:
# ASan + UBSan, LeakSanitizer on, -O1). Every test ctest knows in a tree (ctest
# --show-only; benchmarks under tests/bench/ are never run) is run, N at a time,
# each job slot with its OWN fresh dev services (deploy/devservices.sh, a new
# state dir per slot and tree), with these exported:
#   services.env (EHRGATE_TEST_PG, EHRGATE_TEST_S3, ...), EHRGATE_BIN (gateway/ehrgate),
#   EHRGATE_CTL (client/ehrctl), EHRGATE_SOURCE_DIR, EHRGATE_DEVSERVICES (the script),
#   EHRGATE_TEST_REPLIES (the tree's replies.jsonl: the harness records the gateway's
#   replies there; after the tree's tests, tests/openapi/validate_replies.js checks
#   them against schemas/openapi.yaml and counts as one more binary).
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
JOBS=${EHRGATE_TEST_JOBS:-2}

while [ $# -gt 0 ]; do
	case $1 in
	--quick) QUICK=1 ;;
	--filter) FILTER=${2:?--filter needs a REGEX}; shift ;;
	--no-bootstrap) BOOTSTRAP=0 ;;
	-j | --jobs) JOBS=${2:?--jobs needs a number}; shift ;;
	--build-root) BUILD_ROOT=${2:?--build-root needs a directory}; shift ;;
	-h | --help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "run.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
	esac
	shift
done

cd "$ROOT" || exit 2
START=$(date +%s)
STATES=()
LOGROOT=
declare -a SLOT_STATE=() SLOT_PID=() SLOT_NAME=() SLOT_T0=() SLOT_LOG=()
stop_services() {
	local s
	for s in "${STATES[@]}"; do
		"$ROOT/deploy/devservices.sh" destroy "$s" >/dev/null 2>&1 || true
	done
	STATES=()
}
BUILD_PID=
kill_running() {
	local p
	[ -z "$BUILD_PID" ] || kill -TERM -- "-$BUILD_PID" 2>/dev/null
	for p in "${SLOT_PID[@]}"; do
		[ -n "$p" ] && kill -TERM "$p" 2>/dev/null
	done
	wait 2>/dev/null
}
on_exit() {
	stop_services
}
on_signal() {
	echo "run.sh: interrupted" >&2
	kill_running
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
	# In its own process group, in the background + wait, so that INT/TERM
	# stop the whole build at once (see kill_running).
	setsid bash -c 'cmake -S "$1" -B "$2" -DCMAKE_BUILD_TYPE=RelWithDebInfo "${@:3}" && cmake --build "$2" -j2 -- -k' \
		build "$ROOT" "$dir" "${extra[@]}" >"$LOGROOT/$name.cmake.log" 2>&1 </dev/null &
	BUILD_PID=$!
	wait "$BUILD_PID"
	local rc=$?
	BUILD_PID=
	return $rc
}

# name<TAB>command...<TAB>workdir, one per test that ctest knows. Longest
# first, so that parallel slots finish together: by the duration recorded in
# the tree's last run (B/.ehrgate-test-times), else integration tests first.
list_tests() {
	ctest --test-dir "$1" --show-only=json-v1 2>/dev/null | node -e '
		const fs = require("fs");
		const times = {};
		try {
			for (const l of fs.readFileSync(process.argv[1], "utf8").split("\n")) {
				const [n, ms] = l.split(" ");
				if (n) times[n] = Number(ms);
			}
		} catch (e) {}
		let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
			const j = JSON.parse(s || "{\"tests\":[]}");
			const rows = [];
			for (const t of j.tests || []) {
				if (!t.command) continue;
				const wd = ((t.properties || []).find((p) => p.name === "WORKING_DIRECTORY") || {}).value || "";
				const guess = t.command.join(" ").includes("/tests/integration/") ? 1e9 : 0;
				rows.push({ key: times[t.name] ?? guess, i: rows.length,
					line: [t.name, JSON.stringify(t.command), wd].join("\t") });
			}
			rows.sort((a, b) => b.key - a.key || a.i - b.i);
			for (const r of rows) console.log(r.line);
		});' "$1/.ehrgate-test-times"
}

export ASAN_OPTIONS="halt_on_error=1:abort_on_error=0:detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1:strict_init_order=1:print_summary=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
[ -f "$ROOT/tests/lsan.supp" ] && export LSAN_OPTIONS="suppressions=$ROOT/tests/lsan.supp:print_suppressions=0"

TOTAL_PASS=0
TOTAL_FAIL=0
SUMMARY=()
LOGROOT=$(mktemp -d /tmp/ehrgate-test-logs.XXXXXX)

# Job slots: each runs one test binary at a time against its OWN dev services
# (Postgres + S3 in its own state dir), so parallel binaries never share a
# database, a bucket, or a Postgres that a failure-injection test stops.
start_slots() { # start_slots TREE: 0 on success (the sets start in parallel)
	local i pids=() rc=0
	for ((i = 0; i < JOBS; i++)); do
		SLOT_STATE[i]=$(mktemp -d /tmp/ehrgate-test.XXXXXX)
		STATES+=("${SLOT_STATE[i]}")
		SLOT_PID[i]=
		"$ROOT/deploy/devservices.sh" start "${SLOT_STATE[i]}" >"$LOGROOT/$1.services.$i.log" 2>&1 &
		pids+=($!)
	done
	for ((i = 0; i < JOBS; i++)); do
		if ! wait "${pids[i]}"; then
			cat "$LOGROOT/$1.services.$i.log"
			rc=1
		fi
	done
	return $rc
}

# finish_slot I RC: account for the binary that slot I ran
finish_slot() {
	local i=$1 rc=$2 name=${SLOT_NAME[$1]} log=${SLOT_LOG[$1]} ms dt line p f note=
	ms=$((($(date +%s%N) - SLOT_T0[i]) / 1000000))
	dt=$((ms / 1000)).$(((ms % 1000) / 100))
	SLOT_PID[i]=
	echo "$name $ms" >>"$B/.ehrgate-test-times.new"
	line=$(grep -E '^ehrgate-totals: [^ ]+ [0-9]+ passed, [0-9]+ failed$' "$log" | tail -1)
	if [ -z "$line" ]; then
		p=0
		f=1
		note="no totals line (exit $rc)"
		if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then note="timed out after ${TIMEOUT}s"; fi
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
		echo "  ---- $log"
		grep -E "FAILED|ERROR|Sanitizer|runtime error|^  [0-9]+\. " "$log" | head -30 | sed 's/^/  | /'
		echo "  | ..."
		tail -15 "$log" | sed 's/^/  | /'
		echo "  ----"
	fi
}

# wait_slot: wait for any running binary to end and account for it
wait_slot() {
	local pid= rc i pids=()
	for ((i = 0; i < JOBS; i++)); do [ -z "${SLOT_PID[i]}" ] || pids+=("${SLOT_PID[i]}"); done
	wait -n -p pid "${pids[@]}"
	rc=$?
	for ((i = 0; i < JOBS; i++)); do
		if [ "${SLOT_PID[i]}" = "$pid" ]; then
			finish_slot "$i" "$rc"
			return
		fi
	done
}

running() {
	local i c=0
	for ((i = 0; i < JOBS; i++)); do [ -z "${SLOT_PID[i]}" ] || c=$((c + 1)); done
	echo $c
}

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

	step "[$tree] start dev services ($JOBS sets)"
	if ! start_slots "$tree"; then
		echo "[$tree] DEV SERVICES FAILED"
		TOTAL_FAIL=$((TOTAL_FAIL + 1))
		SUMMARY+=("$tree: dev services failed")
		stop_services
		continue
	fi
	step "[$tree] run tests"
	rm -f "$B/.ehrgate-test-times.new"
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
		[ "$(running)" -lt "$JOBS" ] || wait_slot
		for ((i = 0; i < JOBS; i++)); do [ -n "${SLOT_PID[i]}" ] || break; done
		SLOT_NAME[i]=$name
		SLOT_LOG[i]=$LOGROOT/$tree/$name.log
		SLOT_T0[i]=$(date +%s%N)
		# In the background + wait -n, so that INT/TERM reach the trap at once.
		(
			set -a
			# shellcheck disable=SC1091
			. "${SLOT_STATE[i]}/services.env"
			set +a
			export EHRGATE_BIN=$B/gateway/ehrgate EHRGATE_CTL=$B/client/ehrctl
			export EHRGATE_SOURCE_DIR=$ROOT EHRGATE_DEVSERVICES=$ROOT/deploy/devservices.sh
			export EHRGATE_TEST_REPLIES=$LOGROOT/$tree/replies.jsonl
			cd "${wd:-$B}" && exec timeout --kill-after=10 "$TIMEOUT" "${cmd[@]}"
		) >"${SLOT_LOG[i]}" 2>&1 </dev/null &
		SLOT_PID[i]=$!
	done < <(list_tests "$B")
	while [ "$(running)" -gt 0 ]; do wait_slot; done
	# The replies the tests recorded (tests/harness/replies.c), validated
	# against schemas/openapi.yaml: counted like one more binary.
	if [ -s "$LOGROOT/$tree/replies.jsonl" ]; then
		SLOT_NAME[0]=test_openapi_replies
		SLOT_LOG[0]=$LOGROOT/$tree/test_openapi_replies.log
		SLOT_T0[0]=$(date +%s%N)
		node "$ROOT/tests/openapi/validate_replies.js" "$LOGROOT/$tree/replies.jsonl" >"${SLOT_LOG[0]}" 2>&1
		finish_slot 0 $?
	fi
	[ -n "$FILTER" ] || mv -f "$B/.ehrgate-test-times.new" "$B/.ehrgate-test-times" 2>/dev/null
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
