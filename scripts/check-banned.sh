#!/usr/bin/env bash
# check-banned.sh - fail on banned C functions (CONVENTIONS.md), like curl's checksrc.
#
#   scripts/check-banned.sh [DIR|FILE ...]   (default: common ledger policy auth records cloud client gateway tests)
#
# Banned everywhere: sprintf vsprintf strcpy strcat strncpy strncat gets strtok
# atoi atol sscanf rand random. Comments and string literals are ignored.
#
# snprintf / vsnprintf (issue 11): product code formats with ehr_fmt /
# ehr_vfmt / ehr_str_copy (common/common.h), which refuse to truncate and
# whose result must be used. The few places that must call vsnprintf
# themselves (ehr_vfmt itself and the error slot in common/error.c, the
# size-then-write of common/buf.c, the log line in common/log.c, the header
# buffer in gateway/http/conn_reply.c: none of them may touch the error
# slot) check its result and say so on the same line with the comment
# /* bounded: checked */ . A marker on the line, like memcmp's, rather than
# a list of files: a new unchecked call in one of those files is still
# caught, and the reason sits next to the code. tests/ may use snprintf.
#
# memcmp: secrets (MACs, tokens, hashes, keys) must be compared with
# CRYPTO_memcmp. A plain memcmp is allowed only on a line that says why it is
# safe with the comment  /* not secret */  (e.g. comparing a magic header or
# test data). Every other memcmp is reported.
#
# Prints file:line: function for each hit and exits 1 if there is any.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
[ $# -gt 0 ] || set -- common ledger policy auth records cloud client gateway tests
mapfile -t FILES < <(find "$@" -type f \( -name '*.c' -o -name '*.h' \) -not -path '*/node_modules/*' 2>/dev/null | sort)
[ ${#FILES[@]} -gt 0 ] || exit 0

perl -e '
my $banned = qr/\b(sprintf|vsprintf|strcpy|strcat|strncpy|strncat|gets|strtok|atoi|atol|sscanf|rand|random)\s*\(/;
my $fmt = qr/\b(snprintf|vsnprintf)\s*\(/;
my $bad = 0;
for my $f (@ARGV) {
	open(my $fh, "<", $f) or die "$f: $!";
	local $/; my $src = <$fh>; close $fh;
	my @raw = split /\n/, $src, -1;
	# Blank out comments, string and char literals, keeping newlines so line numbers hold.
	$src =~ s{(/\*.*?\*/|//[^\n]*|"(?:\\.|[^"\\\n])*"|\x27(?:\\.|[^\x27\\\n])*\x27)}{ my $m = $1; $m =~ s/[^\n]/ /g; $m }gse;
	my @code = split /\n/, $src, -1;
	for my $i (0 .. $#code) {
		while ($code[$i] =~ /$banned/g) {
			print "$f:" . ($i + 1) . ": banned function $1()\n"; $bad = 1;
		}
		if ($f !~ m{^tests/} && $code[$i] =~ $fmt && $raw[$i] !~ m{/\*\s*bounded: checked\s*\*/}) {
			print "$f:" . ($i + 1) . ": $1() in product code (use ehr_fmt/ehr_vfmt/ehr_str_copy, or check it and mark the line /* bounded: checked */)\n"; $bad = 1;
		}
		if ($code[$i] =~ /(?<![\w.>])memcmp\s*\(/ && $raw[$i] !~ m{/\*\s*not secret\s*\*/}) {
			print "$f:" . ($i + 1) . ": memcmp() without /* not secret */ (use CRYPTO_memcmp for secrets)\n"; $bad = 1;
		}
	}
}
exit $bad;
' "${FILES[@]}" || {
	echo "check-banned: banned functions found (see CONVENTIONS.md and scripts/check-banned.sh)" >&2
	exit 1
}
