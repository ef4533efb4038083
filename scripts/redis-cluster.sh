#!/usr/bin/env bash
# redis-cluster.sh start|stop|status [base_port]
#
# A throwaway local Redis Cluster of three masters (no replicas) on 127.0.0.1, ports
# base_port, base_port+1, base_port+2 (default 7001-7003), from Debian's redis-server.
# Nothing is kept on disk beyond each node's nodes-PORT.conf in its own directory under
# ${REDIS_CLUSTER_DIR:-${TMPDIR:-/tmp}/commerce-redis-cluster}/PORT.
#
#   start   start the nodes, create the cluster, wait for cluster_state:ok; idempotent (a
#           cluster that is already up and ok is left alone). Prints on stdout:
#               REDIS_ADDRS=127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003
#           so `eval "$(scripts/redis-cluster.sh start)"` works; progress goes to stderr.
#   stop    shut the nodes down and remove their directories; idempotent.
#   status  print REDIS_ADDRS and exit 0 if the cluster is up and ok, else exit 1.
#
# Only nodes this script started (their `dir` is under the directory above) are ever
# shut down; a foreign Redis on one of the ports is an error.
set -euo pipefail

log() { printf 'redis-cluster: %s\n' "$*" >&2; }
die() { printf 'redis-cluster: ERROR: %s\n' "$*" >&2; exit 1; }

usage() { die "usage: $0 start|stop|status [base_port]"; }

[ $# -ge 1 ] && [ $# -le 2 ] || usage
CMD="$1"
BASE="${2:-${REDIS_CLUSTER_BASE_PORT:-7001}}"
[[ "$BASE" =~ ^[0-9]+$ ]] && [ "$BASE" -ge 1 ] && [ "$BASE" -le 65533 ] || die "bad base port '$BASE'"
PORTS=("$BASE" "$((BASE + 1))" "$((BASE + 2))")
ROOT="${REDIS_CLUSTER_DIR:-${TMPDIR:-/tmp}/commerce-redis-cluster}"
WAIT="${REDIS_CLUSTER_WAIT:-30}"
ADDRS="127.0.0.1:${PORTS[0]},127.0.0.1:${PORTS[1]},127.0.0.1:${PORTS[2]}"

command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1 ||
	die "redis-server/redis-cli not found (apt-get install redis-server, or run scripts/dev-services.sh)"

rcli() { # rcli PORT ARGS...
	local p="$1"
	shift
	redis-cli -h 127.0.0.1 -p "$p" "$@"
}

ping() { [ "$(rcli "$1" ping 2>/dev/null)" = "PONG" ]; }

# info_field PORT FIELD → value of FIELD in CLUSTER INFO (empty if unavailable)
info_field() {
	rcli "$1" cluster info 2>/dev/null | tr -d '\r' | sed -n "s/^$2://p"
}

# ours PORT: the node on PORT was started by this script
ours() {
	local dir
	dir="$(rcli "$1" config get dir 2>/dev/null | sed -n 2p)"
	[ "$dir" = "$ROOT/$1" ]
}

cluster_ok() {
	local p
	for p in "${PORTS[@]}"; do
		ping "$p" || return 1
		[ "$(info_field "$p" cluster_state)" = "ok" ] || return 1
		[ "$(info_field "$p" cluster_known_nodes)" = "3" ] || return 1
		[ "$(info_field "$p" cluster_slots_assigned)" = "16384" ] || return 1
	done
}

wait_ok() {
	local deadline=$((SECONDS + WAIT))
	while ((SECONDS < deadline)); do
		if cluster_ok; then return 0; fi
		sleep 0.5
	done
	cluster_ok
}

start_node() {
	local p="$1" d="$ROOT/$1"
	mkdir -p "$d"
	redis-server --port "$p" --bind 127.0.0.1 \
		--cluster-enabled yes --cluster-config-file "nodes-$p.conf" --cluster-node-timeout 5000 \
		--save "" --appendonly no --daemonize yes --dir "$d" \
		--logfile "$d/redis.log" --pidfile "$d/redis.pid" >&2 ||
		die "redis-server on port $p failed to start (see $d/redis.log)"
}

stop_node() {
	local p="$1" d="$ROOT/$1" pid i
	if ping "$p"; then
		if ours "$p"; then
			rcli "$p" shutdown nosave >/dev/null 2>&1 || true
		else
			log "port $p: a Redis not started by this script answers there; leaving it alone"
			return 0
		fi
	elif [ -f "$d/redis.pid" ]; then
		# started by us but not answering: end that one process, by its id
		pid="$(cat "$d/redis.pid" 2>/dev/null || true)"
		if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && grep -q redis-server "/proc/$pid/cmdline" 2>/dev/null; then
			kill "$pid" 2>/dev/null || true
		fi
	fi
	for ((i = 0; i < 20; i++)); do
		ping "$p" || break
		sleep 0.25
	done
	ping "$p" && die "port $p: Redis did not shut down"
	rm -rf "$d"
}

stop_all() {
	local p
	for p in "${PORTS[@]}"; do stop_node "$p"; done
	rmdir "$ROOT" 2>/dev/null || true
}

# start_all: start the nodes that are down; create the cluster if every node is new.
# Sets MIXED=1 when some nodes are new and others remember an earlier cluster (such a
# cluster can only be rebuilt).
MIXED=0
start_all() {
	local p fresh=1 new=0
	MIXED=0
	for p in "${PORTS[@]}"; do
		if ping "$p"; then
			ours "$p" || die "port $p is taken by a Redis not started by this script (choose another base port)"
			[ "$(rcli "$p" info cluster 2>/dev/null | tr -d '\r' | sed -n 's/^cluster_enabled://p')" = "1" ] ||
				die "port $p: Redis is not in cluster mode"
		else
			start_node "$p"
		fi
	done
	for p in "${PORTS[@]}"; do
		local deadline=$((SECONDS + WAIT))
		while ((SECONDS < deadline)); do
			ping "$p" && break
			sleep 0.2
		done
		ping "$p" || die "node on port $p not answering after ${WAIT}s (see $ROOT/$p/redis.log)"
		# a node that already knows others or owns slots was part of an earlier cluster
		if [ "$(info_field "$p" cluster_known_nodes)" != "1" ] || [ "$(info_field "$p" cluster_slots_assigned)" != "0" ]; then
			fresh=0
		else
			new=1
		fi
	done
	if [ "$fresh" = 0 ] && [ "$new" = 1 ]; then
		MIXED=1
		return 0
	fi
	if [ "$fresh" = 1 ]; then
		log "creating cluster on $ADDRS"
		redis-cli --cluster create "127.0.0.1:${PORTS[0]}" "127.0.0.1:${PORTS[1]}" "127.0.0.1:${PORTS[2]}" \
			--cluster-replicas 0 --cluster-yes >&2 || die "redis-cli --cluster create failed"
	fi
}

case "$CMD" in
start)
	if cluster_ok; then
		log "cluster already up on $ADDRS"
		echo "REDIS_ADDRS=$ADDRS"
		exit 0
	fi
	start_all
	if [ "$MIXED" = 1 ] || ! wait_ok; then
		# A half-formed cluster left by an earlier run (it holds no data worth keeping):
		# wipe it and build a fresh one, once.
		log "cluster not ok; recreating it from scratch"
		stop_all
		start_all
		wait_ok || die "cluster on $ADDRS not ok after ${WAIT}s (logs in $ROOT/*/redis.log)"
	fi
	log "cluster ok on $ADDRS"
	echo "REDIS_ADDRS=$ADDRS"
	;;
stop)
	stop_all
	log "cluster on ports ${PORTS[*]} stopped"
	;;
status)
	if cluster_ok; then
		echo "REDIS_ADDRS=$ADDRS"
	else
		log "cluster on $ADDRS is not up"
		exit 1
	fi
	;;
*)
	usage
	;;
esac
