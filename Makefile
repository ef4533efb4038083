# commerce — developer targets. `make` (or `make help`) lists them.
#
# Every target that needs PostgreSQL and Redis first runs scripts/dev-services.sh, which
# starts them (installing the Debian packages if needed) when they are not reachable on
# 127.0.0.1:5432 / 127.0.0.1:6379, and creates the database named in DATABASE_URL.
#
# Development secrets: `make run` (and `make bench`, `make migrate`) need ADMIN_TOKEN,
# AUTH_JWT_SECRET and PAYMENT_WEBHOOK_SECRET. On the first run random values are written
# to .dev.env (mode 600, ignored by git) and reused on every later run, so the values
# stay stable and curl examples can read them:
#     source .dev.env                                   # or
#     curl -H "Authorization: Bearer $(grep '^ADMIN_TOKEN=' .dev.env | cut -d= -f2)" ...
# A variable already set in the environment wins over .dev.env. Delete .dev.env to get
# new values.

SHELL := bash
.SHELLFLAGS := -eo pipefail -c
.DEFAULT_GOAL := help

GO            ?= go
TEST_FLAGS    ?=
FUZZTIME      ?= 30s
# make test replays every fuzz target's seeds and its committed corpus (testdata/fuzz/, the
# inputs that once failed) inside go test, which is deterministic. Exploring new inputs is
# make fuzz, or TEST_FUZZTIME=3000x make test: a random search can find a new bug in code the
# change under test never touched, so it is not what decides whether a change lands. Fuzz by
# execution count rather than by time: go1.26's fuzz coordinator can fail a target with a
# spurious "context deadline exceeded" at the end of a -fuzztime duration on a loaded machine
# (go.dev/issue/75804); a count has no deadline to race.
TEST_FUZZTIME ?= 0
BENCH_QUICK   ?=
BENCH_GO      ?=
BENCHTIME     ?= $(if $(filter 1 true yes,$(BENCH_QUICK)),200ms,1s)
BENCH_FLAGS   ?=
CLUSTER_BASE_PORT ?= 7001
# make test also runs the Redis-backed suites against a local 3-master Cluster (without
# -race: what it guards is key layout, CROSSSLOT and hash tags) and a rotating share of the
# mutation check (1/TEST_MUTATE_ROTATE of the mutants, the share chosen by the date);
# TEST_CLUSTER=0 or TEST_MUTATE_ROTATE=0 leave either out. make mutate runs every mutant.
TEST_CLUSTER       ?= 1
TEST_MUTATE_ROTATE ?= 4
MUTATE_FLAGS       ?=
# staticcheck is pinned: a new release can add checks, and a lint that changes by itself
# is not a lint. v0.8.2 is built with and for Go 1.26.
STATICCHECK   ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
DEV_ENV       := .dev.env
CLUSTER_PKGS  := ./internal/inventory/... ./internal/cart/... ./internal/checkout/...
CLUSTER_RACE  ?= -race

# Shell prelude for the targets that start the service: load .dev.env without overriding
# variables that are already set in the environment, and default to development mode.
define load_dev_env
saved="$$(export -p | grep -E '^declare -x (ADMIN_TOKEN|AUTH_JWT_SECRET|PAYMENT_WEBHOOK_SECRET)="[^"]' || true)"; \
set -a; . ./$(DEV_ENV); set +a; \
eval "$$saved"; \
export APP_ENV="$${APP_ENV:-development}";
endef

.PHONY: help services run test test-ha test-cluster mutate bench fuzz lint migrate up down build alerts

help: ## list the targets
	@echo "commerce — make targets:"
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*## "}; {printf "  %-13s %s\n", $$1, $$2}'
	@echo
	@echo "Variables: TEST_FLAGS='...' (extra go test flags), FUZZTIME=$(FUZZTIME), BENCH_QUICK=1,"
	@echo "BENCH_FLAGS='...' (commerce-bench flags), BENCH_GO=1 (also run Go benchmarks, BENCHTIME=$(BENCHTIME)),"
	@echo "CLUSTER_BASE_PORT=$(CLUSTER_BASE_PORT) (make test-cluster), STATICCHECK=$(STATICCHECK),"
	@echo "TEST_CLUSTER=$(TEST_CLUSTER), TEST_MUTATE_ROTATE=$(TEST_MUTATE_ROTATE) (make test), MUTATE_FLAGS='...' (make mutate)."

services: ## make sure PostgreSQL and Redis run locally and the database exists
	@scripts/dev-services.sh

# Created once, then reused: see the comment at the top.
$(DEV_ENV):
	@umask 077; \
	rnd() { head -c "$$1" /dev/urandom | od -An -tx1 | tr -d ' \n'; }; \
	{ \
		echo "# Development secrets for make run/bench/migrate, created by make on $$(date -u +%FT%TZ)."; \
		echo "# Not for production. git ignores this file; delete it to get new values."; \
		echo "ADMIN_TOKEN=$$(rnd 16)"; \
		echo "AUTH_JWT_SECRET=$$(rnd 32)"; \
		echo "PAYMENT_WEBHOOK_SECRET=$$(rnd 16)"; \
	} > $(DEV_ENV); \
	echo "created $(DEV_ENV) with development secrets"

run: services $(DEV_ENV) ## serve the demo shop on http://127.0.0.1:8080 (SEED_DEMO=true, APP_ENV=development)
	@$(load_dev_env) \
	export SEED_DEMO="$${SEED_DEMO:-true}"; \
	export PAYMENT_PROVIDER="$${PAYMENT_PROVIDER:-test}"; \
	echo "development secrets (kept in $(DEV_ENV); 'source $(DEV_ENV)' to use them in curl):"; \
	echo "  ADMIN_TOKEN=$$ADMIN_TOKEN"; \
	echo "  AUTH_JWT_SECRET=$$AUTH_JWT_SECRET"; \
	echo "  PAYMENT_WEBHOOK_SECRET=$$PAYMENT_WEBHOOK_SECRET"; \
	exec $(GO) run ./cmd/commerce serve

test: services alerts ## every test with -race on the local PostgreSQL and Redis; the Redis suites on a 3-master Cluster; 1/TEST_MUTATE_ROTATE of make mutate; the fuzz corpora (TEST_FUZZTIME=3000x also explores)
	$(GO) test -race -count=1 -timeout 15m $(TEST_FLAGS) ./...
	@if [ "$(TEST_CLUSTER)" != "0" ]; then $(MAKE) --no-print-directory test-cluster CLUSTER_RACE=; fi
	@if [ "$(TEST_MUTATE_ROTATE)" != "0" ]; then $(MAKE) --no-print-directory mutate MUTATE_FLAGS="-rotate $(TEST_MUTATE_ROTATE)"; fi
	@if [ "$(TEST_FUZZTIME)" != "0" ]; then $(MAKE) --no-print-directory fuzz FUZZTIME=$(TEST_FUZZTIME); fi

test-cluster: services ## run the inventory, cart and checkout tests against a local 3-master Redis Cluster
	@trap 'scripts/redis-cluster.sh stop $(CLUSTER_BASE_PORT)' EXIT; \
	trap 'exit 130' INT TERM; \
	addrs="$$(scripts/redis-cluster.sh start $(CLUSTER_BASE_PORT) | sed -n 's/^REDIS_ADDRS=//p')"; \
	[ -n "$$addrs" ] || { echo "redis-cluster.sh printed no REDIS_ADDRS" >&2; exit 1; }; \
	echo "REDIS_ADDRS=$$addrs $(GO) test $(CLUSTER_RACE) -count=1 $(TEST_FLAGS) $(CLUSTER_PKGS)"; \
	REDIS_ADDRS="$$addrs" $(GO) test $(CLUSTER_RACE) -count=1 -timeout 15m $(TEST_FLAGS) $(CLUSTER_PKGS)

mutate: services ## mutation check: break each guard of cmd/mutate/mutants.go in a scratch copy; fail if the tests named for it still pass
	$(GO) run ./cmd/mutate $(MUTATE_FLAGS)

test-ha: services ## fail Redis (Sentinel) and PostgreSQL (streaming standby) over under 32 shoppers, on private ports (about 2 min)
	$(GO) test -tags ha -count=1 -timeout 15m -run '^TestHA' -v $(TEST_FLAGS) ./internal/app/ 2>&1 | \
		grep -v -e '^redis: ' -e '^=== RUN'

bench: services $(DEV_ENV) ## run the load benchmark (BENCH_QUICK=1: under a minute; BENCH_GO=1: also go test -bench)
	@$(load_dev_env) \
	export BENCH_QUICK="$(BENCH_QUICK)"; \
	$(GO) run ./cmd/commerce-bench $(BENCH_FLAGS)
	@if [ "$(BENCH_GO)" = 1 ]; then \
		$(GO) test -run '^$$' -bench . -benchmem -benchtime=$(BENCHTIME) $(TEST_FLAGS) ./internal/...; \
	fi

alerts: ## promtool check rules + promtool test rules on deploy/alerts.yml (installs Debian's prometheus for promtool)
	@scripts/check-alerts.sh

fuzz: services ## run every fuzz target for FUZZTIME each (default 30s)
	@listfail=0; \
	targets="$$($(GO) test -list '^Fuzz' ./... | awk ' \
		/^Fuzz/ { names[n++] = $$1; next } \
		/^ok[ \t]/ { for (i = 0; i < n; i++) print $$2, names[i]; n = 0; next } \
		{ n = 0 }')" || listfail=1; \
	if [ -z "$$targets" ]; then echo "no fuzz targets found"; fi; \
	while read -r pkg name; do \
		[ -n "$$pkg" ] || continue; \
		echo "==> $$pkg $$name (fuzztime $(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) "$$pkg" </dev/null; \
	done <<< "$$targets"; \
	if [ "$$listfail" = 1 ]; then \
		echo "fuzz: some packages failed to build or list their tests (see above); their targets did not run" >&2; \
		exit 1; \
	fi

lint: ## go vet and staticcheck
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

migrate: services $(DEV_ENV) ## apply the database migrations (commerce migrate up)
	@$(load_dev_env) \
	$(GO) run ./cmd/commerce migrate up

up: ## docker compose: PostgreSQL 16, Redis 7 and the service on :8080 (needs a Docker engine)
	docker compose up --build -d

down: ## docker compose down (volumes are kept; add -v by hand to drop them)
	docker compose down

build: ## build bin/commerce (the service) and bin/commerce-bench (the load generator)
	$(GO) build -o bin/commerce ./cmd/commerce
	$(GO) build -o bin/commerce-bench ./cmd/commerce-bench
