#!/usr/bin/env bash
# dev-services.sh — make sure the tools and services that `make run` / `make test` need
# are there: the tools of ensure_tools (gcc for `go test -race`, ...), a reachable
# PostgreSQL and Redis, and the application database. Idempotent: when everything is
# already there it only checks (and creates the database if it is missing).
#
# To add a tool or a service, add a `need` line to ensure_tools or an ensure_* function
# called from main at the bottom; apt_install and as_root do the installing.
#
# When a local service is down it installs the Debian packages `postgresql` /
# `redis-server` if they are missing (apt-get; sudo only when not root) and starts them:
#   PostgreSQL: pg_ctlcluster --skip-systemctl-redirect <version> <cluster> start
#               (local TCP connections are made password-free with a `trust` line in
#               pg_hba.conf if they are not already)
#   Redis:      redis-server --daemonize yes --bind 127.0.0.1 -::1 --port <port>
#               --save "" --appendonly no (nothing kept on disk)
# A service on another host is only checked, never started.
#
# Environment (all optional):
#   DATABASE_URL  postgres://user[:password]@host[:port]/dbname  (default
#                 postgres://postgres@127.0.0.1:5432/commerce?sslmode=disable); only the
#                 user, password, host, port and database name are used
#   PG_HOST, PG_PORT   override the host/port taken from DATABASE_URL
#   PG_CLUSTER         Debian cluster name to start or create (default: the cluster that
#                      is configured for PG_PORT, else `main`)
#   REDIS_URL     redis://[:password@]host[:port][/db] (default redis://127.0.0.1:6379/0);
#                 only the host, port and password are used
#   REDIS_HOST, REDIS_PORT   override the host/port taken from REDIS_URL
#   SERVICES_WAIT      seconds to wait for a service to become ready (default 30)
#   STRIPE_MOCK_ADDR   host:port of stripe-mock, Stripe's API mock that the Stripe
#                      provider's tests run against (default 127.0.0.1:12111). When nothing
#                      answers there, bin/stripe-mock is built (go install, pinned version
#                      STRIPE_MOCK_VERSION, default v0.203.0) if missing and started in the
#                      background (log in $TMPDIR/stripe-mock-<port>.log).
set -euo pipefail

log() { printf 'dev-services: %s\n' "$*" >&2; }
die() { printf 'dev-services: ERROR: %s\n' "$*" >&2; exit 1; }

# as_root CMD...: run CMD as root (through sudo when not root; only asked for when needed)
as_root() {
	if [ "$(id -u)" -eq 0 ]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo "$@"
	else
		die "needs root for '$*', and sudo is not installed: run it as root or install sudo"
	fi
}
WAIT="${SERVICES_WAIT:-30}"

# ---------------------------------------------------------------- configuration

# parse_url URL → sets U_USER U_PASS U_HOST U_PORT U_PATH (no percent-decoding; keep URLs simple)
parse_url() {
	local rest="${1#*://}" hostport userinfo=""
	rest="${rest%%\?*}"
	rest="${rest%%#*}"
	hostport="${rest%%/*}"
	if [[ "$rest" == */* ]]; then U_PATH="${rest#*/}"; else U_PATH=""; fi
	if [[ "$hostport" == *@* ]]; then
		userinfo="${hostport%@*}"
		hostport="${hostport##*@}"
	fi
	U_USER="${userinfo%%:*}"
	if [[ "$userinfo" == *:* ]]; then U_PASS="${userinfo#*:}"; else U_PASS=""; fi
	if [[ "$hostport" == \[* ]]; then # [v6]:port
		U_HOST="${hostport%%]*}"
		U_HOST="${U_HOST#[}"
		U_PORT="${hostport#*]}"
		U_PORT="${U_PORT#:}"
	else
		U_HOST="${hostport%%:*}"
		if [[ "$hostport" == *:* ]]; then U_PORT="${hostport##*:}"; else U_PORT=""; fi
	fi
}

is_local() {
	case "$1" in
	"" | 127.0.0.1 | localhost | ::1) return 0 ;;
	*) return 1 ;;
	esac
}

parse_url "${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/commerce?sslmode=disable}"
PG_USER="${U_USER:-postgres}"
PG_PASS="$U_PASS"
PG_HOST="${PG_HOST:-${U_HOST:-127.0.0.1}}"
PG_PORT="${PG_PORT:-${U_PORT:-5432}}"
PG_DB="${U_PATH:-commerce}"
[[ "$PG_DB" =~ ^[A-Za-z0-9_-]+$ ]] || die "database name '$PG_DB' from DATABASE_URL: only [A-Za-z0-9_-] is supported here"
[[ "$PG_PORT" =~ ^[0-9]+$ ]] || die "PostgreSQL port '$PG_PORT' is not a number"

parse_url "${REDIS_URL:-redis://127.0.0.1:6379/0}"
REDIS_HOST="${REDIS_HOST:-${U_HOST:-127.0.0.1}}"
REDIS_PORT="${REDIS_PORT:-${U_PORT:-6379}}"
REDIS_PASS="$U_PASS"
[[ "$REDIS_PORT" =~ ^[0-9]+$ ]] || die "Redis port '$REDIS_PORT' is not a number"

if [ -n "$PG_PASS" ]; then export PGPASSWORD="$PG_PASS"; fi
export PGCONNECT_TIMEOUT=5

# ---------------------------------------------------------------- helpers

APT_UPDATED=""
apt_install() {
	command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install $* yourself"
	if [ -z "$APT_UPDATED" ]; then
		log "apt-get update"
		as_root apt-get update -qq >&2 || die "apt-get update failed"
		APT_UPDATED=1
	fi
	log "installing $*"
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2 || die "apt-get install $* failed"
}

pg_ready() { pg_isready -q -h "$PG_HOST" -p "$PG_PORT" >/dev/null 2>&1; }

# psql against the maintenance database, over TCP, never prompting for a password
pg_query() { psql -X -w -q -v ON_ERROR_STOP=1 -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -d postgres -tAc "$1"; }

# need COMMAND PACKAGE...: install the Debian PACKAGEs when COMMAND is not on PATH
need() {
	local cmd="$1"
	shift
	command -v "$cmd" >/dev/null 2>&1 || apt_install "$@"
}

# redis_cli ARGS...: redis-cli against the configured Redis, authenticating only when a
# password is configured (an empty REDISCLI_AUTH still sends AUTH, which a Redis without a
# password answers with an error before the reply).
redis_cli() {
	if [ -n "$REDIS_PASS" ]; then
		REDISCLI_AUTH="$REDIS_PASS" redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" "$@"
	else
		redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" "$@"
	fi
}

redis_ping() {
	local out
	out="$(redis_cli ping 2>&1)" || return 1
	[ "$out" = "PONG" ]
}

# redis_refuses: true when something answers on the Redis port but refuses the ping
# (a password is required, or the one given is wrong). Starting a second server there
# would only fail with "address in use", so the caller stops with a clear message.
redis_refuses() {
	local out
	out="$(redis_cli ping 2>&1)" || true
	grep -qE 'NOAUTH|WRONGPASS|invalid password|Authentication required|ERR AUTH' <<<"$out"
}

# wait_for CHECK-FUNCTION: true once CHECK-FUNCTION succeeds, false after WAIT seconds
wait_for() {
	local check="$1" deadline=$((SECONDS + WAIT))
	while ((SECONDS < deadline)); do
		if "$check"; then return 0; fi
		sleep 0.5
	done
	"$check"
}

# ---------------------------------------------------------------- PostgreSQL

pg_server_installed() {
	command -v pg_ctlcluster >/dev/null 2>&1 && command -v pg_isready >/dev/null 2>&1 &&
		command -v psql >/dev/null 2>&1 && compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null
}

# pg_find_cluster → "VERSION NAME" of the Debian cluster configured for PG_PORT, if any
pg_find_cluster() {
	local ver name port
	while read -r ver name port _; do
		if [ "$port" = "$PG_PORT" ]; then
			if [ -z "${PG_CLUSTER:-}" ] || [ "$PG_CLUSTER" = "$name" ]; then
				echo "$ver $name"
				return 0
			fi
		fi
	done < <(pg_lsclusters -h 2>/dev/null || true)
	return 1
}

# pg_cluster → "VERSION NAME" of the Debian cluster to use for PG_PORT (created if needed)
pg_cluster() {
	local line ver name
	if pg_find_cluster; then return 0; fi
	ver="$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)"
	[ -n "$ver" ] || ver="$(ls /usr/lib/postgresql | sort -V | tail -n 1)"
	[ -n "$ver" ] || die "no PostgreSQL version found in /etc/postgresql or /usr/lib/postgresql"
	name="${PG_CLUSTER:-main}"
	if [ -d "/etc/postgresql/$ver/$name" ]; then
		line="$(pg_lsclusters -h "$ver" "$name" 2>/dev/null || true)"
		die "PostgreSQL cluster $ver/$name exists but is not configured for port $PG_PORT ($line); set PG_CLUSTER or PG_PORT"
	fi
	log "creating PostgreSQL cluster $ver/$name on port $PG_PORT"
	as_root pg_createcluster --port "$PG_PORT" "$ver" "$name" >&2 || die "pg_createcluster $ver $name failed"
	echo "$ver $name"
}

# pg_trust_local VERSION NAME: let local TCP connections in without a password
pg_trust_local() {
	local ver="$1" name="$2" hba
	hba="$(pg_conftool -s "$ver" "$name" show hba_file 2>/dev/null || echo "/etc/postgresql/$ver/$name/pg_hba.conf")"
	[ -f "$hba" ] || as_root test -f "$hba" || die "pg_hba.conf not found for cluster $ver/$name"
	if as_root grep -q 'added by scripts/dev-services.sh' "$hba"; then
		return 0
	fi
	log "allowing password-free local TCP connections in $hba (trust for 127.0.0.1 and ::1)"
	# pg_hba.conf is first match wins: put the trust lines at the top.
	as_root sed -i '1i # added by scripts/dev-services.sh (development machine): local TCP without password\nhost all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
	as_root pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" reload >&2 || die "reload of cluster $ver/$name failed"
	sleep 1
}

ensure_postgres() {
	local cluster="" ver name
	if ! pg_ready; then
		is_local "$PG_HOST" || die "PostgreSQL at $PG_HOST:$PG_PORT is not reachable (not a local address, so not starting it)"
		if ! pg_server_installed; then
			apt_install postgresql
		fi
		if ! pg_ready; then # the package's install may have started it
			cluster="$(pg_cluster)"
			read -r ver name <<<"$cluster"
			log "starting PostgreSQL cluster $ver/$name"
			as_root pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" start >&2 ||
				die "pg_ctlcluster $ver $name start failed (see /var/log/postgresql/postgresql-$ver-$name.log)"
		fi
		wait_for pg_ready || die "PostgreSQL on $PG_HOST:$PG_PORT not ready after ${WAIT}s"
		log "PostgreSQL started on $PG_HOST:$PG_PORT"
	else
		log "PostgreSQL is up on $PG_HOST:$PG_PORT"
	fi

	# Can we log in over TCP without being asked for a password? Only a refused password
	# (not, say, a missing role) on a local server without a password in DATABASE_URL
	# leads to the pg_hba.conf change.
	local err
	if ! err="$(pg_query 'SELECT 1' 2>&1 >/dev/null)"; then
		if is_local "$PG_HOST" && [ -z "$PG_PASS" ] && command -v pg_lsclusters >/dev/null 2>&1 &&
			grep -qiE 'no password supplied|password authentication failed|authentication failed' <<<"$err"; then
			if [ -n "$cluster" ] || cluster="$(pg_find_cluster)"; then
				read -r ver name <<<"$cluster"
				pg_trust_local "$ver" "$name"
			fi
		fi
		err="$(pg_query 'SELECT 1' 2>&1 >/dev/null)" ||
			die "cannot connect to PostgreSQL as '$PG_USER' on $PG_HOST:$PG_PORT: $err"
	fi

	if [ "$(pg_query "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'")" = "1" ]; then
		log "database '$PG_DB' exists"
	else
		log "creating database '$PG_DB'"
		createdb -w -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" "$PG_DB" ||
			[ "$(pg_query "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'")" = "1" ] || # lost a race: fine
			die "createdb $PG_DB failed"
	fi
}

# ---------------------------------------------------------------- Redis

ensure_redis() {
	if redis_ping; then
		log "Redis is up on $REDIS_HOST:$REDIS_PORT"
		return 0
	fi
	if redis_refuses; then
		if [ -n "$REDIS_PASS" ]; then
			die "Redis on $REDIS_HOST:$REDIS_PORT refuses the password in REDIS_URL. Fix the password, or point REDIS_URL (and TEST_REDIS_ADDR for the tests) at another Redis."
		fi
		die "Redis on $REDIS_HOST:$REDIS_PORT answers but requires a password. For make run, put it in REDIS_URL (redis://:PASSWORD@$REDIS_HOST:$REDIS_PORT/0). The tests need a Redis without a password: set REDIS_PORT=6380 TEST_REDIS_ADDR=127.0.0.1:6380 and this script starts one there."
	fi
	is_local "$REDIS_HOST" || die "Redis at $REDIS_HOST:$REDIS_PORT is not reachable (not a local address, so not starting it)"
	if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
		apt_install redis-server
		if redis_ping; then # the package's install may have started it
			log "Redis is up on $REDIS_HOST:$REDIS_PORT"
			return 0
		fi
		redis_refuses && die "Redis on $REDIS_HOST:$REDIS_PORT, started by the package, requires a password; set REDIS_URL"
	fi
	local logdir=/var/log/redis dir=/var/lib/redis
	if ! { [ -d "$logdir" ] && [ -w "$logdir" ]; }; then logdir="${TMPDIR:-/tmp}"; fi
	if ! { [ -d "$dir" ] && [ -w "$dir" ]; }; then dir="${TMPDIR:-/tmp}"; fi
	local logfile="$logdir/dev-redis-$REDIS_PORT.log"
	log "starting Redis on 127.0.0.1:$REDIS_PORT (log $logfile)"
	redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT" \
		--save "" --appendonly no --dir "$dir" --logfile "$logfile" \
		--pidfile "${TMPDIR:-/tmp}/dev-redis-$REDIS_PORT.pid" >&2 ||
		die "redis-server failed to start (see $logfile)"
	wait_for redis_ping || die "Redis on $REDIS_HOST:$REDIS_PORT not ready after ${WAIT}s (see $logfile)"
	log "Redis started on $REDIS_HOST:$REDIS_PORT"
}

# ---------------------------------------------------------------- tools

# ensure_tools installs the programs the tests and the service need besides Go and make.
# One `need <command> <debian package>...` line per tool.
ensure_tools() {
	# The go command downloads modules over TLS: a minimal Debian has no CA certificates.
	[ -e /etc/ssl/certs/ca-certificates.crt ] || apt_install ca-certificates
	# go test -race needs cgo: a C compiler and the C library headers.
	need gcc gcc libc6-dev
	[ -e /usr/include/stdlib.h ] || apt_install libc6-dev
	# The client tools of the services (a local server gets the whole package).
	if ! command -v pg_isready >/dev/null 2>&1 || ! command -v psql >/dev/null 2>&1; then
		if is_local "$PG_HOST"; then apt_install postgresql; else apt_install postgresql-client; fi
	fi
	need redis-server redis-server # also the private servers that crash tests start
	need redis-cli redis-tools
	# make mutate (part of make test) copies the tree with git ls-files.
	need git git
}

# ---------------------------------------------------------------- stripe-mock

STRIPE_MOCK_ADDR="${STRIPE_MOCK_ADDR:-127.0.0.1:12111}"
STRIPE_MOCK_VERSION="${STRIPE_MOCK_VERSION:-v0.203.0}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

stripe_mock_ready() {
	# stripe-mock answers any authenticated API path; a 2xx on the balance says it is up.
	curl --noproxy "*" -fsS -o /dev/null --max-time 2 -u sk_test_123: "http://$STRIPE_MOCK_ADDR/v1/balance" 2>/dev/null
}

ensure_stripe_mock() {
	if stripe_mock_ready; then
		log "stripe-mock is up on $STRIPE_MOCK_ADDR"
		return 0
	fi
	local host="${STRIPE_MOCK_ADDR%:*}"
	is_local "$host" || die "stripe-mock at $STRIPE_MOCK_ADDR is not reachable (not a local address, so not starting it)"
	need curl curl
	local bin="$ROOT/bin/stripe-mock"
	if [ ! -x "$bin" ]; then
		command -v go >/dev/null 2>&1 || die "go is required to build stripe-mock"
		log "building stripe-mock $STRIPE_MOCK_VERSION into $bin"
		GOBIN="$ROOT/bin" GOFLAGS=-mod=mod go install "github.com/stripe/stripe-mock@$STRIPE_MOCK_VERSION" >&2 ||
			die "go install github.com/stripe/stripe-mock@$STRIPE_MOCK_VERSION failed"
	fi
	local logfile="${TMPDIR:-/tmp}/stripe-mock-${STRIPE_MOCK_ADDR##*:}.log"
	log "starting stripe-mock on $STRIPE_MOCK_ADDR (log $logfile)"
	nohup "$bin" -http-addr "$STRIPE_MOCK_ADDR" >"$logfile" 2>&1 </dev/null &
	wait_for stripe_mock_ready || die "stripe-mock on $STRIPE_MOCK_ADDR not ready after ${WAIT}s (see $logfile)"
	log "stripe-mock started on $STRIPE_MOCK_ADDR"
}

# ---------------------------------------------------------------- main

ensure_tools
ensure_postgres
ensure_redis
ensure_stripe_mock
log "ready: postgres://$PG_USER@$PG_HOST:$PG_PORT/$PG_DB, redis $REDIS_HOST:$REDIS_PORT, stripe-mock $STRIPE_MOCK_ADDR"
