#!/usr/bin/env bash
# quickstart.sh - THE first README command: install what is missing, build,
# start the dev services, initialise keys, migrate, and run the gateway in the
# foreground on https://127.0.0.1:8443. Ctrl-C (or SIGTERM) stops the gateway
# and then the dev services. Re-running it reuses everything already there.
#
#   ./deploy/quickstart.sh          (from the repo root, as root)
#
# Everything lives under ./.state (git-ignored):
#   .state/dev/          private PostgreSQL 15 cluster (deploy/devservices.sh)
#   .state/ehrgate.ini   configuration, written once from deploy/ehrgate.example.ini
#                        (the database port is refreshed on each run)
#   .state/gateway/      keys and dev PKI (`ehrgate init`), 0700
#   .state/objects/      the filesystem object store
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
STATE=$ROOT/.state
DEV=$STATE/dev
INI=$STATE/ehrgate.ini
GWSTATE=$STATE/gateway
BUILD=${EHRGATE_BUILD_DIR:-$ROOT/build} # override for development trees
EHRGATE=$BUILD/gateway/ehrgate

say() { echo "quickstart: $*" >&2; }

"$ROOT/deploy/bootstrap.sh"

say "building $BUILD (ehrgate, ehrctl)"
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" -j2 --target ehrgate >"$BUILD/quickstart-build.log" 2>&1 || {
	grep -E "error|\*\*\*" "$BUILD/quickstart-build.log" | head -20 >&2
	say "build failed (full log: $BUILD/quickstart-build.log)"
	exit 1
}
# The CLI is a convenience here; the gateway does not need it to run.
cmake --build "$BUILD" -j2 --target ehrctl >>"$BUILD/quickstart-build.log" 2>&1 ||
	say "note: ehrctl did not build (see $BUILD/quickstart-build.log); continuing"

mkdir -p "$STATE"
chmod 0755 "$STATE"
CHILD=
cleanup() {
	local rc=$?
	if [ -n "$CHILD" ] && kill -0 "$CHILD" 2>/dev/null; then
		kill -TERM "$CHILD" 2>/dev/null || true
		wait "$CHILD" 2>/dev/null || true
	fi
	say "stopping dev services"
	"$ROOT/deploy/devservices.sh" stop "$DEV" >/dev/null 2>&1 || true
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say "starting dev services in $DEV"
"$ROOT/deploy/devservices.sh" start "$DEV" --no-s3 >/dev/null
# shellcheck disable=SC1091
. "$DEV/services.env"
APP_URL="host=127.0.0.1 port=$EHRGATE_TEST_PG_PORT dbname=ehr user=ehrgate_app"
ADMIN_URL="host=127.0.0.1 port=$EHRGATE_TEST_PG_PORT dbname=ehr user=postgres"

if [ ! -f "$INI" ]; then
	say "writing $INI"
	if [ -f "$ROOT/deploy/ehrgate.example.ini" ]; then
		# Start from the documented example, then set the dev values below.
		cp "$ROOT/deploy/ehrgate.example.ini" "$INI.tmp"
	else
		: >"$INI.tmp"
	fi
	set_ini() { # set_ini SECTION KEY VALUE: replace the key in its section, or add it there
		node -e '
			const fs = require("fs");
			const [file, sec, key, val] = process.argv.slice(1);
			const lines = fs.readFileSync(file, "utf8").split("\n");
			let cur = "", start = -1, done = false;
			for (let i = 0; i < lines.length; i++) {
				const m = /^\s*\[([^\]]+)\]/.exec(lines[i]);
				if (m) { cur = m[1].trim(); if (cur === sec) start = i; continue; }
				if (cur === sec && new RegExp("^\\s*[;#]?\\s*" + key + "\\s*=").test(lines[i])) {
					if (!done) lines[i] = key + " = " + val; else lines[i] = "";
					done = true;
				}
			}
			if (!done) {
				if (start < 0) { lines.push("", "[" + sec + "]"); start = lines.length - 1; }
				lines.splice(start + 1, 0, key + " = " + val);
			}
			fs.writeFileSync(file, lines.join("\n"));
		' "$INI.tmp" "$1" "$2" "$3"
	}
	set_ini server listen "127.0.0.1:8443"
	set_ini server state_dir "$GWSTATE"
	set_ini database url "$APP_URL"
	set_ini database admin_url "$ADMIN_URL"
	set_ini store backend fs
	set_ini store fs_path "$STATE/objects"
	chmod 0600 "$INI.tmp"
	mv "$INI.tmp" "$INI"
else
	# The cluster may have moved to another free port: keep the ini true.
	sed -i -E "s/^(\s*(url|admin_url)\s*=\s*host=127\.0\.0\.1 port=)[0-9]+( dbname=ehr )/\1$EHRGATE_TEST_PG_PORT\3/" "$INI"
fi
mkdir -p "$STATE/objects"

if [ ! -f "$GWSTATE/server.key" ]; then
	say "ehrgate init (keys and dev PKI in $GWSTATE)"
	"$EHRGATE" init -c "$INI"
elif [ ! -f "$GWSTATE/link.key" ]; then
	# A .state/ from before schema 0055: init adds link.key alone.
	say "ehrgate init (adding link.key to $GWSTATE)"
	"$EHRGATE" init -c "$INI"
fi
say "ehrgate migrate"
"$EHRGATE" migrate -c "$INI"

cat >&2 <<EOF
quickstart: starting the gateway; it prints the URL it listens on.
quickstart:   try: curl --cacert $GWSTATE/ca.pem https://127.0.0.1:8443/healthz
quickstart:   config: $INI   state: $GWSTATE   Ctrl-C stops it and the dev services.
EOF
# In the background + wait, so that SIGTERM to this script reaches the trap
# (which forwards it) instead of waiting for the gateway to exit by itself.
"$EHRGATE" serve -c "$INI" &
CHILD=$!
set +e
wait "$CHILD" # returns early when a trapped signal arrives; the EXIT trap then stops the gateway
exit $?
