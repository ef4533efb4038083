#!/usr/bin/env bash
# ha-redis.sh start|stop|status [base_port]
#
# A throwaway Redis Sentinel setup on 127.0.0.1 from Debian's redis-server: a master on
# base_port (default 7101), a replica on base_port+1 and a replica of that replica on
# base_port+2 (chained), and three
# sentinels on base_port+3..base_port+5 (redis-server --sentinel, what the redis-sentinel
# package runs)
# monitoring the master as "commerce" with quorum 2, down-after 1000 ms. No persistence
# (the HA tests kill nodes and check what the replicas kept).
#
# Why chained: with REDIS_REPLICA_ACKS=1 the service's writes wait until one replica of
# the master has them (WAIT counts direct replicas only). The master has exactly one
# direct replica, the one Sentinel will promote, so a write the master takes after that
# replica left it (SENTINEL FAILOVER) is never confirmed, hence never acknowledged, and
# after the promotion the new master still has a direct replica (the chained one) to
# confirm writes to. With two direct replicas, the second could confirm a write and then
# be resynchronized from the promoted one, losing it. Everything lives under
# ${HA_REDIS_DIR:-${TMPDIR:-/tmp}/commerce-ha-redis}/BASE.
#
#   start   start the six processes and wait until every sentinel knows the master, its
#           replica and the two other sentinels, and both replicas are in sync. Prints on stdout:
#               REDIS_SENTINEL_ADDRS=127.0.0.1:7104,127.0.0.1:7105,127.0.0.1:7106
#               REDIS_MASTER_NAME=commerce
#           so `eval "$(scripts/ha-redis.sh start)"` works; progress goes to stderr.
#   stop    stop every process this script started (by the pids it recorded) and remove
#           the directory; idempotent.
#   status  print the current master (as the sentinels see it) and exit 0, or exit 1.
set -euo pipefail

log() { printf 'ha-redis: %s\n' "$*" >&2; }
die() { printf 'ha-redis: ERROR: %s\n' "$*" >&2; exit 1; }

[ $# -ge 1 ] && [ $# -le 2 ] || die "usage: $0 start|stop|status [base_port]"
CMD="$1"
BASE="${2:-${HA_REDIS_BASE_PORT:-7101}}"
[[ "$BASE" =~ ^[0-9]+$ ]] && [ "$BASE" -ge 1 ] && [ "$BASE" -le 65530 ] || die "bad base port '$BASE'"
MASTER=$BASE
REPLICAS=($((BASE + 1)) $((BASE + 2)))
SENTINELS=($((BASE + 3)) $((BASE + 4)) $((BASE + 5)))
NAME="${HA_REDIS_MASTER_NAME:-commerce}"
ROOT="${HA_REDIS_DIR:-${TMPDIR:-/tmp}/commerce-ha-redis}/$BASE"
WAIT="${HA_REDIS_WAIT:-30}"

command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1 ||
	die "redis-server/redis-cli not found (apt-get install redis-server redis-sentinel)"

rcli() { local p="$1"; shift; redis-cli -h 127.0.0.1 -p "$p" "$@" 2>/dev/null; }
up() { [ "$(rcli "$1" ping)" = "PONG" ]; }

start_data() { # start_data PORT [replicaof args]
	local p="$1" d="$ROOT/$1"
	shift
	mkdir -p "$d"
	up "$p" && die "port $p is already in use"
	redis-server --port "$p" --bind 127.0.0.1 --dir "$d" --save "" --appendonly no \
		--daemonize yes --pidfile "$d/redis.pid" --logfile "$d/redis.log" "$@" >/dev/null
}

start_sentinel() {
	local p="$1" d="$ROOT/s$1"
	mkdir -p "$d"
	up "$p" && die "port $p is already in use"
	cat >"$d/sentinel.conf" <<CONF
port $p
bind 127.0.0.1
dir $d
daemonize yes
pidfile $d/sentinel.pid
logfile $d/sentinel.log
sentinel monitor $NAME 127.0.0.1 $MASTER 2
sentinel down-after-milliseconds $NAME 1000
sentinel failover-timeout $NAME 10000
sentinel parallel-syncs $NAME 1
CONF
	redis-server "$d/sentinel.conf" --sentinel >/dev/null
}

ready() {
	local p
	for p in "${SENTINELS[@]}"; do
		local m
		m="$(rcli "$p" sentinel master "$NAME" | tr -d '\r')" || return 1
		[ "$(sed -n '/^num-slaves$/{n;p}' <<<"$m")" = "1" ] || return 1
		[ "$(sed -n '/^num-other-sentinels$/{n;p}' <<<"$m")" = "2" ] || return 1
	done
	for p in "${REPLICAS[@]}"; do
		[ "$(rcli "$p" info replication | tr -d '\r' | sed -n 's/^master_link_status://p')" = "up" ] || return 1
	done
}

stop_all() {
	local f
	shopt -s nullglob
	for f in "$ROOT"/*/redis.pid "$ROOT"/*/sentinel.pid; do
		local pid
		pid="$(cat "$f" 2>/dev/null || true)"
		# Only a redis process of ours: its command line names our port range.
		if [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q redis; then
			kill -9 "$pid" 2>/dev/null || true
		fi
	done
	rm -rf "$ROOT"
}

case "$CMD" in
start)
	if ready 2>/dev/null; then
		log "already up"
	else
		stop_all
		mkdir -p "$ROOT"
		start_data "$MASTER"
		start_data "${REPLICAS[0]}" --replicaof 127.0.0.1 "$MASTER"
		start_data "${REPLICAS[1]}" --replicaof 127.0.0.1 "${REPLICAS[0]}"
		for p in "${SENTINELS[@]}"; do start_sentinel "$p"; done
		deadline=$((SECONDS + WAIT))
		until ready; do
			((SECONDS < deadline)) || die "sentinels did not see the master, replica and each other within ${WAIT}s (logs in $ROOT)"
			sleep 0.3
		done
		log "master 127.0.0.1:$MASTER, replicas ${REPLICAS[*]}, sentinels ${SENTINELS[*]}"
	fi
	echo "REDIS_SENTINEL_ADDRS=127.0.0.1:${SENTINELS[0]},127.0.0.1:${SENTINELS[1]},127.0.0.1:${SENTINELS[2]}"
	echo "REDIS_MASTER_NAME=$NAME"
	;;
stop)
	stop_all
	;;
status)
	m="$(rcli "${SENTINELS[0]}" sentinel get-master-addr-by-name "$NAME" | tr -d '\r' | paste -sd:)"
	[ -n "$m" ] || exit 1
	echo "master=$m"
	;;
*) die "usage: $0 start|stop|status [base_port]" ;;
esac
