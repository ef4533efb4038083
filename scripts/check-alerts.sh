#!/usr/bin/env bash
# check-alerts.sh — check deploy/alerts.yml with Prometheus's own tool: `promtool check
# rules` (syntax, PromQL, templates) and `promtool test rules deploy/alerts_test.yml`
# (each alert fires on the series it is meant for and stays quiet on the others).
#
# promtool comes from Debian's `prometheus` package; when it is missing this script
# installs the package (apt-get; sudo only when not root). `make test` runs it.
# Environment: PROMTOOL  path of a promtool to use instead (skips the install).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf 'check-alerts: %s\n' "$*" >&2; }
die() { printf 'check-alerts: ERROR: %s\n' "$*" >&2; exit 1; }

PROMTOOL="${PROMTOOL:-}"
if [ -z "$PROMTOOL" ]; then
	if ! command -v promtool >/dev/null 2>&1; then
		command -v apt-get >/dev/null 2>&1 || die "promtool not found and apt-get is missing: install Prometheus's promtool, or set PROMTOOL"
		SUDO=""
		if [ "$(id -u)" -ne 0 ]; then
			command -v sudo >/dev/null 2>&1 || die "promtool not found; not root and sudo is not installed"
			SUDO="sudo"
		fi
		log "installing Debian's prometheus package (for promtool)"
		$SUDO apt-get update -qq >&2 || die "apt-get update failed"
		# --no-install-recommends: promtool only, not the exporters and web console.
		$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >&2 ||
			die "apt-get install prometheus failed"
	fi
	PROMTOOL=promtool
fi

"$PROMTOOL" --version 2>&1 | head -n 1 >&2
"$PROMTOOL" check rules deploy/alerts.yml
"$PROMTOOL" test rules deploy/alerts_test.yml
