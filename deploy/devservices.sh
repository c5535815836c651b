#!/usr/bin/env bash
# devservices.sh - private PostgreSQL 15 + S3 (s3rver behind a SigV4-verifying front,
# over http and https) on free loopback ports, for tests and the quick start.
#
#   deploy/devservices.sh start  STATE_DIR [--no-s3] [--region R] [--bucket B]
#   deploy/devservices.sh stop   STATE_DIR        (safe to call twice)
#   deploy/devservices.sh status STATE_DIR
#   deploy/devservices.sh env    STATE_DIR        (print services.env)
#   deploy/devservices.sh destroy STATE_DIR       (stop, then delete STATE_DIR and its /tmp dirs)
#   deploy/devservices.sh stop-pg|start-pg STATE_DIR   (Postgres only; same port, same data)
#   deploy/devservices.sh stop-s3|start-s3 STATE_DIR   (s3rver and the front; same ports, data, certs)
#   deploy/devservices.sh start-syslog|stop-syslog STATE_DIR
#       (rsyslog as an ATNA Audit Record Repository; started only on demand; same port on restart)
#
# `start` waits until every service answers, writes STATE_DIR/services.env (shell
# `export` lines: EHRGATE_TEST_PG, EHRGATE_TEST_PG_SOCKDIR, EHRGATE_TEST_PG_PORT,
# EHRGATE_TEST_S3, EHRGATE_TEST_S3_HTTPS, EHRGATE_TEST_S3_CA, EHRGATE_TEST_S3_DIRECT,
# EHRGATE_TEST_S3_BUCKET, EHRGATE_TEST_S3_REGION, EHRGATE_TEST_S3_ACCESS_KEY,
# EHRGATE_TEST_S3_SECRET_KEY, EHRGATE_TEST_STATE) and prints it.
# Starting an already running state dir is a no-op that prints the same settings.
# Every process is stopped by its recorded PID (Postgres with pg_ctl stop).
#
# The front serves the same signature-checking S3 on two loopback ports: plain http
# (EHRGATE_TEST_S3, what everything uses) and https (EHRGATE_TEST_S3_HTTPS, for the
# client's TLS verification tests). Its certificate names IP 127.0.0.1 and DNS localhost
# and is issued by a private test CA made with the openssl CLI on the first start
# (remade when it nears expiry): STATE_DIR/tls/ca.pem (EHRGATE_TEST_S3_CA), ca.key,
# server.pem, server.key (keys 0600). Trust that CA only in tests.
#
# start-syslog runs Debian's rsyslogd (packages rsyslog, rsyslog-gnutls) in the
# foreground under its own config file STATE_DIR/syslog/rsyslog.conf, never the
# system's: imtcp on 127.0.0.1 with StreamDriver gtls, mode 1 (TLS only),
# authmode x509/certvalid (the client must present a certificate from the test
# CA), the front's server certificate, and every received message's raw text
# (%rawmsg%, the RFC 5424 SYSLOG-MSG without its octet count) appended as one
# line to STATE_DIR/syslog/messages.log. It also issues a client certificate for
# the gateway's feed from the test CA (tls/syslog-client.pem, .key) and adds to
# services.env: EHRGATE_TEST_SYSLOG (127.0.0.1:PORT), EHRGATE_TEST_SYSLOG_CA,
# EHRGATE_TEST_SYSLOG_CERT, EHRGATE_TEST_SYSLOG_KEY, EHRGATE_TEST_SYSLOG_FILE.
# stop-syslog stops it by its PID; the port, certificates and the file stay.
#
# Runs as root (Postgres runs as the `postgres` user, since initdb refuses root).
# Needs: postgresql-15, node, openssl (and deploy/s3/node_modules: run deploy/bootstrap.sh).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
S3DIR=$HERE/s3
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
ACCESS_KEY=S3RVER
SECRET_KEY=S3RVER

die() {
	echo "devservices: $*" >&2
	exit 1
}
say() { echo "devservices: $*" >&2; }

usage() {
	sed -n '2,41p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
	exit 2
}

[ $# -ge 2 ] || usage
CMD=$1
STATE_ARG=$2
shift 2
WITH_S3=1
REGION=us-east-1
BUCKET=ehrgate
while [ $# -gt 0 ]; do
	case $1 in
	--no-s3) WITH_S3=0 ;;
	--region) REGION=${2:?--region needs a value}; shift ;;
	--bucket) BUCKET=${2:?--bucket needs a value}; shift ;;
	*) usage ;;
	esac
	shift
done
[ "$(id -u)" = 0 ] || die "run as root (Postgres is run as the postgres user via runuser)"

if [ ! -d "$STATE_ARG" ]; then
	case $CMD in
	start) mkdir -p "$STATE_ARG" ;;
	stop | destroy) exit 0 ;; # nothing was started there
	*) die "no state dir $STATE_ARG" ;;
	esac
fi
STATE=$(cd "$STATE_ARG" && pwd)
RUN=$STATE/run # pids, ports and paths of this state dir
if [ "$CMD" = start ]; then
	chmod 0755 "$STATE"
	mkdir -p "$RUN"
fi
[ -d "$RUN" ] || { [ "$CMD" = stop ] && exit 0; } || die "$STATE was never started"

rd() { [ -s "$RUN/$1" ] && cat "$RUN/$1" || true; }
wr() { printf '%s\n' "$2" >"$RUN/$1"; }

# A free loopback TCP port, chosen by the kernel (bind to 0), skipping any in $*.
free_port() {
	local p i
	for i in 1 2 3 4 5 6 7 8; do
		p=$(node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
		case " $* " in *" $p "*) continue ;; esac
		echo "$p"
		return 0
	done
	die "no free port"
}

port_busy() {
	# bash's /dev/tcp: a successful connect means something listens there.
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }

# Stop one recorded process by PID: TERM, wait up to 10 s, then KILL. The
# command line is checked first so a recycled PID is never signalled.
stop_pid() {
	local name=$1 file=$RUN/$1.pid pid i
	pid=$(rd "$name.pid")
	if alive "$pid" && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$2"; then
		kill -TERM "$pid" 2>/dev/null || true
		for i in $(seq 1 100); do
			alive "$pid" || break
			sleep 0.1
		done
		if alive "$pid"; then
			kill -KILL "$pid" 2>/dev/null || true
		fi
		say "stopped $name (pid $pid)"
	fi
	rm -f "$file"
}

# Poll until cmd succeeds or timeout (seconds) passes.
wait_for() {
	local timeout=$1 what=$2 i
	shift 2
	for i in $(seq 1 $((timeout * 10))); do
		if "$@" >/dev/null 2>&1; then
			return 0
		fi
		sleep 0.1
	done
	say "$what did not become ready within ${timeout}s"
	return 1
}

http_answers() { curl -s -o /dev/null -m 2 "$1"; }

# ---------------------------------------------------------------- Postgres

pg_as() { runuser -u postgres -- "$@"; }

pg_paths() {
	PGDATA_DIR=$(rd pg.datadir)
	PGSOCK=$(rd pg.sockdir)
	PGPORT_N=$(rd pg.port)
	PGLOG=$STATE/pg/postgres.log
	# a state dir the postgres user cannot reach keeps the whole cluster in /tmp
	[ -z "$(rd pg.tmpdata)" ] || PGLOG=$(rd pg.tmpdata)/postgres.log
}

pg_running() {
	pg_paths
	[ -n "$PGDATA_DIR" ] && [ -d "$PGDATA_DIR" ] && pg_as "$PGBIN/pg_ctl" -D "$PGDATA_DIR" status >/dev/null 2>&1
}

pg_init() {
	local d=$STATE/pg sock
	mkdir -p "$d"
	chown postgres: "$d"
	chmod 0700 "$d"
	# The postgres user must be able to reach the state dir; if a parent is
	# closed (e.g. /root), keep the cluster under /tmp and record where.
	if pg_as test -w "$d"; then
		wr pg.datadir "$d/data"
	else
		local t
		t=$(mktemp -d /tmp/ehrpgdata.XXXXXX)
		chown postgres: "$t"
		wr pg.datadir "$t/data"
		wr pg.tmpdata "$t"
	fi
	# unix socket path = dir + "/.s.PGSQL.NNNNN" must stay under ~100 bytes.
	sock=$d
	if [ ${#sock} -gt 80 ] || [ -n "$(rd pg.tmpdata)" ]; then
		sock=$(mktemp -d /tmp/ehrpg.XXXX)
		chown postgres: "$sock"
		wr pg.tmpsock "$sock"
	fi
	wr pg.sockdir "$sock"
	pg_paths
	say "initdb $PGDATA_DIR"
	pg_as "$PGBIN/initdb" -D "$PGDATA_DIR" -A trust -U postgres -E UTF8 --locale=C.UTF-8 --no-sync \
		>"$STATE/pg/initdb.log" 2>&1 || {
		cat "$STATE/pg/initdb.log" >&2
		die "initdb failed"
	}
	cat >>"$PGDATA_DIR/postgresql.conf" <<-EOF
		# ehrgate devservices
		max_connections = 200
		unix_socket_directories = '$sock'
		listen_addresses = '127.0.0.1'
	EOF
}

pg_start() {
	local port try
	[ -n "$(rd pg.datadir)" ] && [ -f "$(rd pg.datadir)/PG_VERSION" ] || pg_init
	if pg_running; then
		return 0
	fi
	pg_paths
	# A /tmp socket dir may have been cleaned since: recreate it.
	mkdir -p "$PGSOCK"
	chown postgres: "$PGSOCK"
	touch "$PGLOG"
	chown postgres: "$PGLOG"
	for try in 1 2 3; do
		port=$PGPORT_N
		if [ -z "$port" ] || port_busy "$port"; then
			port=$(free_port "$(rd s3.port)" "$(rd front.port)" "$(rd front.tlsport)")
		fi
		if pg_as "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -l "$PGLOG" -w -t 30 -o "-p $port" start >/dev/null 2>&1; then
			wr pg.port "$port"
			PGPORT_N=$port
			break
		fi
		say "postgres failed to start on port $port (try $try)"
		PGPORT_N=
		[ "$try" = 3 ] && {
			tail -20 "$PGLOG" >&2
			die "postgres did not start"
		}
	done
	wr pg.pid "$(head -1 "$PGDATA_DIR/postmaster.pid")"
	wait_for 20 "postgres" pg_as "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$PGPORT_N" || die "postgres not ready"
	if ! "$PGBIN/psql" -h "$PGSOCK" -p "$PGPORT_N" -U postgres -d postgres -tAc \
		"select 1 from pg_database where datname='ehr'" | grep -q 1; then
		"$PGBIN/psql" -q -h "$PGSOCK" -p "$PGPORT_N" -U postgres -d postgres -c "create database ehr" >/dev/null
	fi
	say "postgres ready on 127.0.0.1:$PGPORT_N (socket dir $PGSOCK)"
}

pg_stop() {
	pg_paths
	if [ -n "$PGDATA_DIR" ] && [ -f "$PGDATA_DIR/postmaster.pid" ]; then
		pg_as "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -m fast -w -t 30 stop >/dev/null 2>&1 || true
		say "stopped postgres"
	fi
	rm -f "$RUN/pg.pid"
}

# ---------------------------------------------------------------- S3

# A front started before it had an https listener (no front.tlsport) counts as
# stopped, so `start` replaces it with one that has.
s3_running() { alive "$(rd s3rver.pid)" && alive "$(rd front.pid)" && [ -n "$(rd front.tlsport)" ]; }

# The private test CA and the front's certificate (IP 127.0.0.1, DNS localhost),
# made once with the openssl CLI into STATE/tls, and remade when the server
# certificate would expire within a day. P-256 keys, 0600.
tls_init() {
	local d=$STATE/tls
	if [ -s "$d/ca.pem" ] && [ -s "$d/server.pem" ] && [ -s "$d/server.key" ] &&
		openssl x509 -checkend 86400 -noout -in "$d/server.pem" >/dev/null 2>&1; then
		return 0
	fi
	mkdir -p "$d"
	chmod 0700 "$d"
	rm -f "$d"/ca.* "$d"/server.*
	cat >"$d/openssl.cnf" <<-'EOF'
		[req]
		distinguished_name = dn
		prompt = no
		[dn]
		CN = ehrgate devservices test CA
		[v3_ca]
		basicConstraints = critical,CA:TRUE
		keyUsage = critical,keyCertSign,cRLSign
		subjectKeyIdentifier = hash
		[v3_server]
		basicConstraints = critical,CA:FALSE
		keyUsage = critical,digitalSignature
		extendedKeyUsage = serverAuth
		subjectAltName = IP:127.0.0.1,DNS:localhost
		subjectKeyIdentifier = hash
		authorityKeyIdentifier = keyid
	EOF
	(
		umask 077
		openssl req -x509 -new -config "$d/openssl.cnf" -extensions v3_ca -days 365 \
			-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$d/ca.key" -out "$d/ca.pem" &&
			openssl req -new -config "$d/openssl.cnf" -subj "/CN=127.0.0.1" \
				-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$d/server.key" -out "$d/server.csr" &&
			openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" \
				-set_serial "0x$(openssl rand -hex 16)" -days 365 \
				-extfile "$d/openssl.cnf" -extensions v3_server -out "$d/server.pem"
	) >"$d/openssl.log" 2>&1 || {
		cat "$d/openssl.log" >&2
		die "could not make the test CA and the front's certificate"
	}
	rm -f "$d/server.csr"
	chmod 0600 "$d/ca.key" "$d/server.key"
	chmod 0644 "$d/ca.pem" "$d/server.pem"
	chmod 0755 "$d"
	say "test CA $d/ca.pem issued the front's certificate (127.0.0.1, localhost)"
}

https_answers() { curl -s -o /dev/null -m 2 --cacert "$STATE/tls/ca.pem" "$1"; }

s3_start() {
	local sport fport tport
	[ -f "$S3DIR/node_modules/s3rver/bin/s3rver.js" ] && [ -d "$S3DIR/node_modules/@smithy/signature-v4" ] ||
		die "deploy/s3/node_modules is missing: run deploy/bootstrap.sh (npm ci in deploy/s3)"
	if s3_running; then
		return 0
	fi
	stop_pid s3rver s3rver.js
	stop_pid front front.js
	mkdir -p "$STATE/s3/data" "$STATE/s3/spool"
	tls_init
	[ -n "$(rd s3.region)" ] || wr s3.region "$REGION"
	[ -n "$(rd s3.bucket)" ] || wr s3.bucket "$BUCKET"
	sport=$(rd s3.port)
	if [ -z "$sport" ] || port_busy "$sport"; then
		sport=$(free_port "$(rd pg.port)" "$(rd front.port)" "$(rd front.tlsport)")
	fi
	fport=$(rd front.port)
	if [ -z "$fport" ] || port_busy "$fport"; then
		fport=$(free_port "$(rd pg.port)" "$sport" "$(rd front.tlsport)")
	fi
	tport=$(rd front.tlsport)
	if [ -z "$tport" ] || port_busy "$tport"; then
		tport=$(free_port "$(rd pg.port)" "$sport" "$fport")
	fi
	wr s3.port "$sport"
	wr front.port "$fport"
	wr front.tlsport "$tport"
	# setsid: detach from the caller's terminal and process group; in a
	# non-interactive shell the child is not a group leader, so setsid execs
	# in place and $! is node's own PID.
	setsid node --openssl-legacy-provider "$S3DIR/node_modules/s3rver/bin/s3rver.js" \
		-d "$STATE/s3/data" -a 127.0.0.1 -p "$sport" --no-vhost-buckets --configure-bucket "$(rd s3.bucket)" \
		>>"$STATE/s3/s3rver.log" 2>&1 </dev/null &
	wr s3rver.pid $!
	setsid node "$S3DIR/front.js" --listen "$fport" --upstream "$sport" --region "$(rd s3.region)" \
		--access-key "$ACCESS_KEY" --secret-key "$SECRET_KEY" --spool-dir "$STATE/s3/spool" \
		--tls-listen "$tport" --tls-cert "$STATE/tls/server.pem" --tls-key "$STATE/tls/server.key" \
		>>"$STATE/s3/front.log" 2>&1 </dev/null &
	wr front.pid $!
	if ! wait_for 20 "s3rver" http_answers "http://127.0.0.1:$sport/" ||
		! wait_for 20 "sigv4 front" http_answers "http://127.0.0.1:$fport/" ||
		! wait_for 20 "sigv4 front (https)" https_answers "https://127.0.0.1:$tport/"; then
		tail -5 "$STATE/s3/s3rver.log" "$STATE/s3/front.log" >&2 || true
		die "s3 did not start"
	fi
	s3_running || die "s3rver or the front exited at start (see $STATE/s3/*.log)"
	say "s3rver ready on 127.0.0.1:$sport, sigv4 front on http 127.0.0.1:$fport and https 127.0.0.1:$tport (bucket $(rd s3.bucket), region $(rd s3.region))"
}

s3_stop() {
	stop_pid front front.js
	stop_pid s3rver s3rver.js
}

# ---------------------------------------------------------------- rsyslog (ATNA)

syslog_running() { alive "$(rd syslog.pid)"; }

# A client certificate for the gateway's ATNA feed, from the test CA (clientAuth).
syslog_client_cert() {
	local d=$STATE/tls
	if [ -s "$d/syslog-client.pem" ] && openssl x509 -checkend 86400 -noout -in "$d/syslog-client.pem" >/dev/null 2>&1 &&
		openssl verify -CAfile "$d/ca.pem" "$d/syslog-client.pem" >/dev/null 2>&1; then
		return 0
	fi
	cat >"$d/client.cnf" <<-'EOF'
		[v3_client]
		basicConstraints = critical,CA:FALSE
		keyUsage = critical,digitalSignature
		extendedKeyUsage = clientAuth
		subjectKeyIdentifier = hash
		authorityKeyIdentifier = keyid
	EOF
	(
		umask 077
		openssl req -new -subj "/CN=ehrgate ATNA feed (test)" -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
			-nodes -keyout "$d/syslog-client.key" -out "$d/syslog-client.csr" &&
			openssl x509 -req -in "$d/syslog-client.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" \
				-set_serial "0x$(openssl rand -hex 16)" -days 365 \
				-extfile "$d/client.cnf" -extensions v3_client -out "$d/syslog-client.pem"
	) >"$d/openssl-client.log" 2>&1 || {
		cat "$d/openssl-client.log" >&2
		die "could not issue the ATNA client certificate"
	}
	rm -f "$d/syslog-client.csr"
	chmod 0600 "$d/syslog-client.key"
	chmod 0644 "$d/syslog-client.pem"
}

syslog_conf() {
	local d=$STATE/syslog port=$1
	cat >"$d/rsyslog.conf" <<-EOF
		# written by deploy/devservices.sh: an ATNA Audit Record Repository for tests
		global(
		  workDirectory="$d/work"
		  maxMessageSize="256k"
		  defaultNetstreamDriver="gtls"
		  defaultNetstreamDriverCAFile="$STATE/tls/ca.pem"
		  defaultNetstreamDriverCertFile="$STATE/tls/server.pem"
		  defaultNetstreamDriverKeyFile="$STATE/tls/server.key"
		)
		module(load="imtcp" streamDriver.name="gtls" streamDriver.mode="1"
		       streamDriver.authMode="x509/certvalid" maxSessions="64")
		input(type="imtcp" address="127.0.0.1" port="$port")
		template(name="ehrgate_raw" type="string" string="%rawmsg%\n")
		action(type="omfile" file="$d/messages.log" template="ehrgate_raw")
	EOF
}

syslog_start() {
	local d=$STATE/syslog port
	command -v rsyslogd >/dev/null 2>&1 && [ -f /usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_gtls.so ] ||
		[ -n "$(find /usr/lib -name lmnsd_gtls.so 2>/dev/null | head -1)" ] ||
		die "rsyslogd with its GnuTLS driver is missing: run deploy/bootstrap.sh (rsyslog, rsyslog-gnutls)"
	if syslog_running; then
		return 0
	fi
	tls_init
	syslog_client_cert
	mkdir -p "$d/work"
	touch "$d/messages.log"
	port=$(rd syslog.port)
	if [ -z "$port" ] || port_busy "$port"; then
		port=$(free_port "$(rd pg.port)" "$(rd s3.port)" "$(rd front.port)" "$(rd front.tlsport)")
	fi
	wr syslog.port "$port"
	syslog_conf "$port"
	rsyslogd -N1 -f "$d/rsyslog.conf" >"$d/check.log" 2>&1 || {
		cat "$d/check.log" >&2
		die "rsyslog rejects its config"
	}
	setsid rsyslogd -n -f "$d/rsyslog.conf" -i "$d/rsyslogd.pid" >>"$d/rsyslogd.log" 2>&1 </dev/null &
	wr syslog.pid $!
	if ! wait_for 20 "rsyslog" port_busy "$port"; then
		tail -5 "$d/rsyslogd.log" >&2 || true
		die "rsyslog did not start"
	fi
	say "rsyslog (ATNA repository, TLS) ready on 127.0.0.1:$port, writing $d/messages.log"
}

syslog_stop() { stop_pid syslog rsyslogd; }

# ---------------------------------------------------------------- env

write_env() {
	pg_paths
	{
		echo "# written by deploy/devservices.sh; source it: . $STATE/services.env"
		echo "export EHRGATE_TEST_STATE='$STATE'"
		echo "export EHRGATE_TEST_PG='host=127.0.0.1 port=$PGPORT_N dbname=ehr user=postgres'"
		echo "export EHRGATE_TEST_PG_SOCKDIR='$PGSOCK'"
		echo "export EHRGATE_TEST_PG_PORT='$PGPORT_N'"
		if [ -n "$(rd front.port)" ] && [ "$(rd s3.enabled)" = 1 ]; then
			echo "export EHRGATE_TEST_S3='http://127.0.0.1:$(rd front.port)'"
			if [ -n "$(rd front.tlsport)" ]; then
				echo "export EHRGATE_TEST_S3_HTTPS='https://127.0.0.1:$(rd front.tlsport)'"
				echo "export EHRGATE_TEST_S3_CA='$STATE/tls/ca.pem'"
			fi
			echo "export EHRGATE_TEST_S3_DIRECT='http://127.0.0.1:$(rd s3.port)'"
			echo "export EHRGATE_TEST_S3_BUCKET='$(rd s3.bucket)'"
			echo "export EHRGATE_TEST_S3_REGION='$(rd s3.region)'"
			echo "export EHRGATE_TEST_S3_ACCESS_KEY='$ACCESS_KEY'"
			echo "export EHRGATE_TEST_S3_SECRET_KEY='$SECRET_KEY'"
		fi
		if [ -n "$(rd syslog.port)" ]; then
			echo "export EHRGATE_TEST_SYSLOG='127.0.0.1:$(rd syslog.port)'"
			echo "export EHRGATE_TEST_SYSLOG_CA='$STATE/tls/ca.pem'"
			echo "export EHRGATE_TEST_SYSLOG_CERT='$STATE/tls/syslog-client.pem'"
			echo "export EHRGATE_TEST_SYSLOG_KEY='$STATE/tls/syslog-client.key'"
			echo "export EHRGATE_TEST_SYSLOG_FILE='$STATE/syslog/messages.log'"
		fi
	} >"$STATE/services.env.tmp"
	mv "$STATE/services.env.tmp" "$STATE/services.env"
}

status() {
	local rc=0
	if pg_running; then
		echo "postgres: running (port $(rd pg.port), socket dir $(rd pg.sockdir))"
	else
		echo "postgres: stopped"
		rc=1
	fi
	if [ "$(rd s3.enabled)" = 1 ]; then
		alive "$(rd s3rver.pid)" && echo "s3rver: running (pid $(rd s3rver.pid), port $(rd s3.port))" ||
			{ echo "s3rver: stopped"; rc=1; }
		alive "$(rd front.pid)" && echo "sigv4 front: running (pid $(rd front.pid), http port $(rd front.port), https port $(rd front.tlsport))" ||
			{ echo "sigv4 front: stopped"; rc=1; }
	fi
	if [ -n "$(rd syslog.port)" ]; then
		syslog_running && echo "rsyslog: running (pid $(rd syslog.pid), port $(rd syslog.port))" ||
			echo "rsyslog: stopped (port $(rd syslog.port))"
	fi
	return $rc
}

case $CMD in
start)
	pg_start
	if [ "$WITH_S3" = 1 ] || [ "$(rd s3.enabled)" = 1 ]; then
		wr s3.enabled 1
		s3_start
	fi
	write_env
	cat "$STATE/services.env"
	;;
stop)
	syslog_stop
	s3_stop
	pg_stop
	# Remove the short /tmp dirs only once Postgres is down (they hold its socket/data).
	t=$(rd pg.tmpsock)
	[ -z "$t" ] || pg_running || rmdir "$t" 2>/dev/null || true # start-pg recreates it
	;;
status) status ;;
env)
	[ -f "$STATE/services.env" ] || die "no services.env in $STATE (not started?)"
	cat "$STATE/services.env"
	;;
destroy)
	# stop, then remove the state dir and any /tmp dirs it recorded
	"$0" stop "$STATE"
	for f in pg.tmpsock pg.tmpdata; do
		t=$(rd $f)
		case $t in /tmp/ehrpg*) rm -rf -- "$t" ;; esac
	done
	rm -rf -- "$STATE"
	;;
stop-pg) pg_stop ;;
start-pg)
	[ -n "$(rd pg.datadir)" ] || die "start-pg needs a state dir that was started before"
	pg_start
	write_env
	;;
stop-s3) s3_stop ;;
start-syslog)
	syslog_start
	write_env
	cat "$STATE/services.env"
	;;
stop-syslog) syslog_stop ;;
start-s3)
	[ "$(rd s3.enabled)" = 1 ] || die "S3 was not enabled for this state dir"
	s3_start
	write_env
	;;
*) usage ;;
esac
