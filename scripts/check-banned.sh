#!/usr/bin/env bash
# check-banned.sh - fail on banned C functions (CONVENTIONS.md), like curl's checksrc.
#
#   scripts/check-banned.sh [DIR|FILE ...]   (default: common ledger policy auth records cloud client gateway tests)
#
# Banned everywhere: sprintf vsprintf strcpy strcat strncpy strncat gets strtok
# atoi atol sscanf rand random. Comments and string literals are ignored.
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
