#!/usr/bin/env bash
# check-size.sh - no product source file over 800 lines, no function over
# 100 (issue 11; Tor's practracker, without exceptions: none are left, and
# an exception list would only invite new ones). Function extents come from
# Universal Ctags (Debian's universal-ctags). tests/ is not held.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
MAX_FILE=800
MAX_FUNC=100
DIRS=()
for d in common ledger policy auth records cloud gateway client; do
	[ -d "$d" ] && DIRS+=("$d")
done

if ! command -v ctags >/dev/null || ! ctags --version 2>/dev/null | grep -q Universal; then
	echo "  check-size needs Universal Ctags (apt-get install universal-ctags)"
	exit 1
fi

{
	# "file PATH LINES" for every source file
	find "${DIRS[@]}" -type f \( -name '*.c' -o -name '*.h' \) -print0 | sort -z |
		xargs -0 wc -l | awk '$2 != "total" { print "file", $2, $1 }'
	# "function PATH:NAME LINES" for every function definition
	ctags -x --_xformat="%{input}:%N %n %{end}" --kinds-C=f --languages=C --langmap=C:.c.h \
		-R "${DIRS[@]}" | awk '{ print "function", $1, $3 - $2 + 1 }'
} | awk -v max_file=$MAX_FILE -v max_func=$MAX_FUNC '
	{
		limit = $1 == "file" ? max_file : max_func
		if ($3 > limit) {
			printf "  %s %s is %d lines (limit %d): split it by concern\n", $1, $2, $3, limit
			bad = 1
		}
	}
	END { exit bad }' | sort
rc=${PIPESTATUS[1]}
exit "$rc"
