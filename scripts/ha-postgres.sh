#!/usr/bin/env bash
# ha-postgres.sh start|stop|promote|kill-primary|status [base_port] [sync|async]
#
# A throwaway PostgreSQL primary (base_port, default 7201) and streaming standby
# (base_port+1) on 127.0.0.1, from Debian's binaries (/usr/lib/postgresql/<v>/bin): initdb,
# pg_basebackup -R for the standby, pg_ctl promote to fail over. TCP only, trust auth
# for 127.0.0.1 (a test setup, never a production one). The third argument chooses the
# replication: async (default) or sync (synchronous_standby_names='*': a commit returns
# only once the standby has flushed it). As root the servers run as the postgres user
# (initdb refuses root). Everything lives under
# ${HA_PG_DIR:-${TMPDIR:-/tmp}/commerce-ha-pg}/BASE; the database is "commerce".
#
#   start         initdb, start the primary, create the database, base-backup and start
#                 the standby, wait until it streams. Prints on stdout:
#                   DATABASE_URL=postgres://postgres@127.0.0.1:7201,127.0.0.1:7202/commerce?sslmode=disable&target_session_attrs=read-write
#                   PRIMARY_PID=… STANDBY_PORT=…
#   kill-primary  SIGKILL the primary's postmaster and every backend of it (a machine loss).
#   promote       pg_ctl promote the standby and wait until it accepts writes.
#   stop          stop both (immediate) and remove the directory; idempotent.
#   status        print each server's role.
set -euo pipefail

log() { printf 'ha-postgres: %s\n' "$*" >&2; }
die() { printf 'ha-postgres: ERROR: %s\n' "$*" >&2; exit 1; }
usage() { die "usage: $0 start|stop|promote|kill-primary|status [base_port] [sync|async]"; }

[ $# -ge 1 ] && [ $# -le 3 ] || usage
CMD="$1"
BASE="${2:-${HA_PG_BASE_PORT:-7201}}"
MODE="${3:-async}"
[[ "$BASE" =~ ^[0-9]+$ ]] && [ "$BASE" -ge 1 ] && [ "$BASE" -le 65530 ] || die "bad base port '$BASE'"
[ "$MODE" = sync ] || [ "$MODE" = async ] || usage
P1=$BASE
P2=$((BASE + 1))
ROOT="${HA_PG_DIR:-${TMPDIR:-/tmp}/commerce-ha-pg}/$BASE"
WAIT="${HA_PG_WAIT:-60}"

BIN="${PG_BIN:-}"
if [ -z "$BIN" ]; then
	for d in /usr/lib/postgresql/*/bin; do [ -x "$d/initdb" ] && BIN="$d"; done
fi
[ -n "$BIN" ] && [ -x "$BIN/initdb" ] || die "PostgreSQL server binaries not found (apt-get install postgresql, or set PG_BIN)"

as_pg() { # run as the postgres user when root
	if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
psqlc() { # psqlc PORT SQL
	as_pg "$BIN/psql" -X -A -t -q -h 127.0.0.1 -p "$1" -U postgres -d postgres -c "$2" 2>/dev/null
}
role() { # role PORT → primary|standby|down
	local r
	r="$(psqlc "$1" 'SELECT pg_is_in_recovery()')" || { echo down; return; }
	[ "$r" = f ] && echo primary || echo standby
}
wait_for() { # wait_for WHAT CMD...
	local what="$1" deadline=$((SECONDS + WAIT))
	shift
	until "$@"; do
		((SECONDS < deadline)) || die "timed out after ${WAIT}s waiting for $what (logs in $ROOT)"
		sleep 0.2
	done
}
pg_ctl() { # pg_ctl DIR ARGS...
	local d="$1"
	shift
	as_pg "$BIN/pg_ctl" -D "$d" -l "$d.log" "$@" >/dev/null
}
streaming() { [ "$(psqlc "$P1" "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")" = 1 ]; }
sync_standby() { [ "$(psqlc "$P1" "SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'")" = 1 ]; }
writable() { [ "$(role "$P2")" = primary ]; }
primary_pid() { head -1 "$ROOT/primary/postmaster.pid" 2>/dev/null || true; }

stop_all() {
	local d
	for d in "$ROOT/primary" "$ROOT/standby"; do
		if [ -f "$d/postmaster.pid" ]; then pg_ctl "$d" stop -m immediate -w 2>/dev/null || true; fi
	done
	rm -rf "$ROOT"
}

case "$CMD" in
start)
	stop_all
	mkdir -p "$ROOT"
	[ "$(id -u)" = 0 ] && chown postgres: "$ROOT"
	for p in "$P1" "$P2"; do
		if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then die "port $p is already in use"; fi
	done
	as_pg "$BIN/initdb" -D "$ROOT/primary" -U postgres --auth=trust -E UTF8 --no-sync >/dev/null
	cat >>"$ROOT/primary/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $P1
unix_socket_directories = ''
wal_level = replica
max_wal_senders = 5
hot_standby = on
max_connections = 100
shared_buffers = 32MB
CONF
	pg_ctl "$ROOT/primary" start -w -t "$WAIT"
	psqlc "$P1" 'CREATE DATABASE commerce' >/dev/null
	as_pg "$BIN/pg_basebackup" -h 127.0.0.1 -p "$P1" -U postgres -D "$ROOT/standby" -R -X stream -c fast --no-sync >/dev/null
	echo "port = $P2" >>"$ROOT/standby/postgresql.conf"
	pg_ctl "$ROOT/standby" start -w -t "$WAIT"
	wait_for "the standby to stream" streaming
	if [ "$MODE" = sync ]; then
		# Only now: with a synchronous standby named before it exists, every commit
		# (CREATE DATABASE included) would wait for it.
		psqlc "$P1" "ALTER SYSTEM SET synchronous_standby_names = '*'" >/dev/null
		psqlc "$P1" 'SELECT pg_reload_conf()' >/dev/null
		wait_for "the standby to become synchronous" sync_standby
	fi
	log "primary 127.0.0.1:$P1, standby 127.0.0.1:$P2 ($MODE replication)"
	echo "DATABASE_URL=postgres://postgres@127.0.0.1:$P1,127.0.0.1:$P2/commerce?sslmode=disable&target_session_attrs=read-write"
	echo "PRIMARY_PID=$(primary_pid)"
	echo "STANDBY_PORT=$P2"
	;;
kill-primary)
	pid="$(primary_pid)"
	[ -n "$pid" ] || die "no primary pid in $ROOT/primary/postmaster.pid"
	# The postmaster and its children (backends, walsender, checkpointer…), by pid.
	kids="$(pgrep -P "$pid" || true)"
	kill -9 "$pid" $kids 2>/dev/null || true
	log "killed primary postmaster $pid and its children"
	;;
promote)
	pg_ctl "$ROOT/standby" promote -w -t "$WAIT"
	wait_for "the promoted standby to accept writes" writable
	log "standby 127.0.0.1:$P2 promoted"
	;;
stop)
	stop_all
	;;
status)
	echo "127.0.0.1:$P1 $(role "$P1")"
	echo "127.0.0.1:$P2 $(role "$P2")"
	;;
*) usage ;;
esac
