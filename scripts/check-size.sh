#!/usr/bin/env bash
# check-size.sh - no product source file over 800 lines, no function over
# 100 (issue 11; Tor's practracker). Function extents come from Universal
# Ctags (Debian's universal-ctags). tests/ is not held.
#
# The ratchet: scripts/size-exceptions.txt lists today's offenders with their
# size today ("file PATH LINES" or "function PATH:NAME LINES"). A listed
# offender may shrink, never grow; a new one fails. When a listed one is back
# within the limit (or gone), the check fails and tells you to delete its
# line, so the list only ever gets shorter. When one shrinks, lower its number.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
MAX_FILE=800
MAX_FUNC=100
EXCEPTIONS=scripts/size-exceptions.txt
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
} | awk -v max_file=$MAX_FILE -v max_func=$MAX_FUNC -v exfile="$EXCEPTIONS" '
	BEGIN {
		while ((getline line < exfile) > 0) {
			sub(/#.*/, "", line)
			if (split(line, f, " ") == 0) continue
			if (split(line, f, " ") != 3 || (f[1] != "file" && f[1] != "function") || f[3] !~ /^[0-9]+$/) {
				printf "  %s: bad line: %s\n", exfile, line; bad = 1; continue
			}
			allowed[f[1] " " f[2]] = f[3]
		}
	}
	{
		key = $1 " " $2
		if (!(key in size) || $3 > size[key]) size[key] = $3 # a name twice: the longest
	}
	END {
		for (key in size) {
			limit = key ~ /^file / ? max_file : max_func
			n = size[key]
			if (n <= limit) continue
			if (!(key in allowed)) {
				printf "  %s is %d lines (limit %d): split it\n", key, n, limit; bad = 1
			} else if (n > allowed[key]) {
				printf "  %s grew to %d lines (exception allows %d, limit %d): split it\n", key, n, allowed[key], limit
				bad = 1
			} else if (n < allowed[key]) {
				printf "  %s shrank to %d lines: lower its line in %s to %d\n", key, n, exfile, n
			}
		}
		for (key in allowed) {
			limit = key ~ /^file / ? max_file : max_func
			if (!(key in size) || size[key] <= limit) {
				printf "  %s is now within %d lines: delete its line from %s\n", key, limit, exfile
				bad = 1
			}
		}
		exit bad
	}' | sort
rc=${PIPESTATUS[1]}
exit "$rc"
