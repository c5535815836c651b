#!/usr/bin/env bash
# check-headers.sh - every header under the product modules compiles alone
# and twice over (libgit2 tests/headertest, PostgreSQL headerscheck): it
# includes what it uses and has an include guard, so no .c file depends on
# the order of its #include lines. Each header is compiled as a translation
# unit of its own, with the flags of the build (-Wall -Wextra -Werror, C11
# with GNU extensions) and the pkg-config cflags of our dependencies.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
CC=${CC:-cc}
PKGS="openssl libevent libevent_openssl libevent_pthreads libpq libcurl libjwt jansson inih"
# shellcheck disable=SC2086
CFLAGS="-std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter -Wno-unused-function -I$ROOT $(pkg-config --cflags $PKGS)"
export CC CFLAGS

mapfile -t HEADERS < <(find common ledger policy auth records cloud gateway client witness -name '*.h' 2>/dev/null | sort)
printf '%s\n' "${HEADERS[@]}" | xargs -P2 -I{} sh -c '
	if ! out=$(printf "#include \"%s\"\n#include \"%s\"\n" "$1" "$1" |
		$CC $CFLAGS -fsyntax-only -x c - 2>&1); then
		printf "  %s does not compile alone:\n%s\n" "$1" "$out" | head -12
		exit 1
	fi' _ {}
rc=$?
[ $rc = 0 ] || exit 1
echo "  ${#HEADERS[@]} headers compile alone"
