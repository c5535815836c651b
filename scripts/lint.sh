#!/usr/bin/env bash
# lint.sh - the static checks CI runs before the tests (.ci/run):
#   1. scripts/check-banned.sh   banned C functions (CONVENTIONS.md)
#   2. clang-format --dry-run -Werror on every *.c / *.h (style: .clang-format)
#   3. cppcheck (warning, portability, performance) with --error-exitcode=1
#   4. scripts/check-layers.sh   includes and CMake links go one way (layers.conf)
#   5. scripts/check-headers.sh  every header compiles alone
#   6. scripts/check-size.sh     files <= 800 lines, functions <= 100, no exceptions
# All always run; the exit status is non-zero if any failed.
#
# Checks 4 and 5 configure CMake and compile headers, so they need the build
# dependencies: as root, lint.sh first runs deploy/bootstrap.sh (idempotent,
# well under a second when all is there), as tests/run.sh does. On a fresh
# machine .ci/run calls lint.sh before anything else has installed them.
#   scripts/lint.sh [--no-bootstrap]
# Fix formatting with:  clang-format -i FILE...
# Silence a cppcheck false positive on one line with a comment on the line above:
#   // cppcheck-suppress <id>
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
BOOTSTRAP=1
for a in "$@"; do
	case $a in
	--no-bootstrap) BOOTSTRAP=0 ;;
	*) echo "usage: scripts/lint.sh [--no-bootstrap]" >&2; exit 2 ;;
	esac
done
if [ "$BOOTSTRAP" = 1 ] && [ "$(id -u)" = 0 ]; then
	bash deploy/bootstrap.sh || { echo "lint: deploy/bootstrap.sh failed" >&2; exit 1; }
fi
DIRS=(common ledger policy auth records cloud client gateway witness tests)
fail=0

mapfile -t FILES < <(find "${DIRS[@]}" -type f \( -name '*.c' -o -name '*.h' \) -not -path '*/node_modules/*' 2>/dev/null | sort)
echo "lint: ${#FILES[@]} C files"

echo "lint: banned functions"
bash scripts/check-banned.sh "${DIRS[@]}" || fail=1

echo "lint: clang-format"
bad=()
for f in "${FILES[@]}"; do
	clang-format --dry-run -Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done
if [ ${#bad[@]} -gt 0 ]; then
	printf '  not formatted: %s\n' "${bad[@]}"
	echo "  (run: clang-format -i ${bad[*]})"
	fail=1
fi

echo "lint: cppcheck"
# missingInclude*: cppcheck is not given the system include paths (on purpose:
# it would then analyse libc/OpenSSL headers); that is not a finding.
if ! cppcheck -q --std=c11 --enable=warning,portability,performance --inline-suppr \
	--suppress=missingIncludeSystem --suppress=missingInclude --error-exitcode=1 \
	-I. -j2 "${DIRS[@]}"; then
	fail=1
fi

echo "lint: layers (includes, links)"
bash scripts/check-layers.sh || fail=1

echo "lint: self-contained headers"
bash scripts/check-headers.sh || fail=1

echo "lint: sizes"
bash scripts/check-size.sh || fail=1

if [ "$fail" = 0 ]; then
	echo "lint: ok"
else
	echo "lint: FAILED"
fi
exit $fail
