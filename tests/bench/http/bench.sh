#!/usr/bin/env bash
# bench.sh - keep-alive HTTPS throughput of ehrgate GET /healthz against
# nginx (Debian's package) returning a static 200 over TLS with the same
# certificate, key, protocols and ciphers, in the same run, on loopback.
#
#   tests/bench/http/bench.sh [EHRGATE_BIN]
#
# Env: DURATION (default 10s), CONNS (64), THREADS (2), ROUNDS (3: the
# servers alternate, medians are compared), ACCESS_LOG (1: every server writes
# an access log line per request; 0: none does), BASELINE_BIN (an older
# ehrgate, e.g. the build of an earlier commit: it runs beside the first and
# is measured in the same rounds, so a change is judged within one run).
# Prints the rates and the ratios to nginx. Not part of the test suite.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
bin=${1:-${EHRGATE_BIN:-}}
if [[ -z "$bin" ]]; then
	cmake -S "$root" -B "$root/build-bench" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build "$root/build-bench" -j2 --target ehrgate >/dev/null
	bin="$root/build-bench/gateway/ehrgate"
fi
DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
THREADS=${THREADS:-2}
ACCESS_LOG=${ACCESS_LOG:-1}
ROUNDS=${ROUNDS:-3}
for tool in wrk nginx; do
	command -v "$tool" >/dev/null || { echo "bench: $tool is not installed (apt-get install $tool)" >&2; exit 2; }
done

work=$(mktemp -d /tmp/ehrbench.XXXXXX)
gw_pid= ng_pid=
cleanup() {
	[[ -n "$gw_pid" ]] && kill "$gw_pid" 2>/dev/null && wait "$gw_pid" 2>/dev/null || true
	[[ -n "${base_pid:-}" ]] && kill "$base_pid" 2>/dev/null && wait "$base_pid" 2>/dev/null || true
	[[ -n "$ng_pid" ]] && kill "$ng_pid" 2>/dev/null || true
	sleep 0.2
	rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

"$bin" init --state-dir "$work/state" >/dev/null
workers=$(nproc)

# ---- ehrgate (no database needed for /healthz; the pool connects lazily)
gw_log=/dev/null
[[ "$ACCESS_LOG" == 1 ]] && gw_log="$work/ehrgate.log"
# [metrics] listen: a free port, given as an environment variable, which a
# baseline binary from before [metrics] existed ignores (no such section).
EHRGATE_METRICS_LISTEN=127.0.0.1:0 "$bin" serve --set server.state_dir="$work/state" --set server.listen=127.0.0.1:0 \
	--set "database.url=host=/nonexistent dbname=none" --set log.access=$([[ "$ACCESS_LOG" == 1 ]] && echo true || echo false) \
	>"$work/gw.out" 2>"$gw_log" &
gw_pid=$!
for _ in $(seq 100); do grep -q listening "$work/gw.out" 2>/dev/null && break; sleep 0.05; done
gw_url=$(awk '/listening on/ {print $4}' "$work/gw.out")
[[ -n "$gw_url" ]] || { echo "bench: ehrgate did not start" >&2; exit 1; }

# ---- the baseline ehrgate, if any: same state, settings and log policy
base_pid= base_url=
if [[ -n "${BASELINE_BIN:-}" ]]; then
	base_log=/dev/null
	[[ "$ACCESS_LOG" == 1 ]] && base_log="$work/baseline.log"
	EHRGATE_METRICS_LISTEN=127.0.0.1:0 "$BASELINE_BIN" serve --set server.state_dir="$work/state" --set server.listen=127.0.0.1:0 \
		--set "database.url=host=/nonexistent dbname=none" --set log.access=$([[ "$ACCESS_LOG" == 1 ]] && echo true || echo false) \
		>"$work/base.out" 2>"$base_log" &
	base_pid=$!
	for _ in $(seq 100); do grep -q listening "$work/base.out" 2>/dev/null && break; sleep 0.05; done
	base_url=$(awk '/listening on/ {print $4}' "$work/base.out")
	[[ -n "$base_url" ]] || { echo "bench: the baseline ehrgate did not start" >&2; exit 1; }
fi

# ---- nginx with the same certificate, protocols and ciphers (gateway/tls.c)
ng_port=$(free_port)
mkdir -p "$work/nginx"
ng_access="access_log off;"
# same batching as ehrgate: at most 16 KiB or 100 ms per write
[[ "$ACCESS_LOG" == 1 ]] && ng_access="access_log $work/nginx/access.log combined buffer=16k flush=100ms;"
cat >"$work/nginx/nginx.conf" <<CONF
worker_processes $workers;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
daemon off;
events { worker_connections 4096; }
http {
	$ng_access
	client_body_temp_path $work/nginx/body;
	proxy_temp_path $work/nginx/proxy;
	fastcgi_temp_path $work/nginx/fastcgi;
	uwsgi_temp_path $work/nginx/uwsgi;
	scgi_temp_path $work/nginx/scgi;
	keepalive_requests 1000000;
	server {
		listen 127.0.0.1:$ng_port ssl reuseport;
		ssl_certificate $work/state/server.pem;
		ssl_certificate_key $work/state/server.key;
		ssl_protocols TLSv1.2 TLSv1.3;
		ssl_ciphers ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256;
		ssl_conf_command Ciphersuites TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256;
		ssl_prefer_server_ciphers on;
		location = /healthz {
			default_type application/json;
			add_header Cache-Control no-store;
			return 200 '{"status":"ok"}';
		}
	}
}
CONF
nginx -c "$work/nginx/nginx.conf" -e "$work/nginx/error.log" &
ng_pid=$!
for _ in $(seq 100); do curl -sk "https://127.0.0.1:$ng_port/healthz" >/dev/null 2>&1 && break; sleep 0.05; done

rate() { # url -> requests/s
	wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency "$1" >"$work/wrk.txt" 2>&1 || true
	cat "$work/wrk.txt" >&2
	awk '/Requests\/sec/ {print $2}' "$work/wrk.txt"
}

# Alternate the two servers for ROUNDS rounds so load changes on the machine
# hit both alike; report the medians and each round's ratio.
gw_rates=() ng_rates=() base_rates=()
ratio_of() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "nan" }'; }
for round in $(seq "$ROUNDS"); do
	echo "== round $round: ehrgate $gw_url/healthz" >&2
	gw_rates+=("$(rate "$gw_url/healthz")")
	if [[ -n "$base_url" ]]; then
		echo "== round $round: baseline ehrgate $base_url/healthz" >&2
		base_rates+=("$(rate "$base_url/healthz")")
	fi
	echo "== round $round: nginx https://127.0.0.1:$ng_port/healthz" >&2
	ng_rates+=("$(rate "https://127.0.0.1:$ng_port/healthz")")
	line="round $round: ehrgate ${gw_rates[-1]} req/s, nginx ${ng_rates[-1]} req/s, ratio $(ratio_of "${gw_rates[-1]}" "${ng_rates[-1]}")"
	[[ -n "$base_url" ]] && line="$line; baseline ${base_rates[-1]} req/s, ratio $(ratio_of "${base_rates[-1]}" "${ng_rates[-1]}")"
	echo "$line"
done
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
gw_rate=$(median "${gw_rates[@]}")
ng_rate=$(median "${ng_rates[@]}")
printf 'ehrgate: %s req/s (median of %s)\nnginx:   %s req/s (median of %s)\nratio ehrgate/nginx: %s (target >= 0.7; wrk -t%s -c%s -d%s, access log %s)\n' \
	"$gw_rate" "$ROUNDS" "$ng_rate" "$ROUNDS" "$(ratio_of "$gw_rate" "$ng_rate")" "$THREADS" "$CONNS" "$DURATION" "$([[ "$ACCESS_LOG" == 1 ]] && echo on || echo off)"
if [[ -n "$base_url" ]]; then
	base_rate=$(median "${base_rates[@]}")
	printf 'baseline ehrgate (%s): %s req/s (median of %s), ratio baseline/nginx: %s; ehrgate/baseline: %s\n' \
		"$BASELINE_BIN" "$base_rate" "$ROUNDS" "$(ratio_of "$base_rate" "$ng_rate")" "$(ratio_of "$gw_rate" "$base_rate")"
fi
