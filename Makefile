# FlowChat — `make help` lists every target.
SHELL := /bin/bash
.DEFAULT_GOAL := help
# uv from PATH, else the one `make setup` installs with pip (run as a module).
UV ?= $(shell command -v uv 2>/dev/null || echo python3 -m uv)
PY := .venv/bin/python
STACK := $(PY) scripts/stack.py

.PHONY: help setup up down status logs demo test test-unit test-ops test-faults test-faults-scale lint mypy-tests format schemas migrate clean bench bench-state-50m bench-quick bench-turn-ab

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

setup: ## Install uv (if missing), every dependency from uv.lock into .venv, the console's npm assets
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	@$(UV) sync --frozen --quiet
	@command -v npm >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1 || { \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
	    --no-install-recommends nodejs npm >/dev/null; }
	@# the console's browser assets (htmx; axe-core for its browser tests), from package-lock.json
	@cd services/console && npm ci --no-audit --no-fund --loglevel=error >/dev/null

up: setup ## Start RabbitMQ, Redis, PostgreSQL (installing them if needed), the services and the sandbox
	@$(STACK) up

down: ## Stop the services (and any server `make up` started itself)
	@[ -x $(PY) ] && $(STACK) down || true

status: ## Show what runs and what answers
	@$(STACK) status

logs: ## Tail every service's log (.run/logs/)
	@$(STACK) logs

demo: up ## Set everything up, seed a demo tenant and catalog, play a customer conversation, print it
	@$(PY) scripts/demo.py

test: setup ## Unit and integration tests against the real servers (started if not running)
	@$(STACK) servers
	@$(STACK) browser
	@$(UV) run --frozen --group bench pytest -q  # the bench group: bench/tests import the bench (psutil)

# iproute2 (ip netns) for the clustered-broker scenarios, which run as root (skipped otherwise)
IPROUTE2 = command -v ip >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1 || { \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
	    --no-install-recommends iproute2 >/dev/null; }

test-faults: setup ## Fault, load, bad-input and security suite: breaks its own broker/Redis/PostgreSQL and a three-node RabbitMQ cluster on purpose, kills and adds conversation replicas mid-burst (~25 min on a loaded 2-core machine; installs iproute2)
	@$(STACK) servers
	@$(IPROUTE2)
	@$(UV) run --frozen pytest -q tests/faults

test-faults-scale: setup ## Only the clustered-broker scenarios of test-faults (leader kills, a partition, a rolling restart: 10+ min on a loaded machine; root, installs iproute2)
	@$(STACK) servers
	@$(IPROUTE2)
	@$(UV) run --frozen pytest -q -s tests/faults/test_faults_rabbit_cluster.py

test-unit: setup ## Only the tests that need no server
	@$(UV) run --frozen pytest -q -m "not integration and not e2e"

test-ops: setup ## Ops checks (~1 min): promtool on metrics/rules, dashboards on a real Prometheus, k8s (kustomize, Helm chart), compose, every OpenAPI document
	@$(STACK) servers
	@command -v promtool >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1 || { \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
	    --no-install-recommends prometheus >/dev/null; }
	@$(UV) run --frozen --group ops pytest -q tests/ops

# mypy over the tests, one run per folder of test files, each with that folder first on
# MYPYPATH: pytest runs every folder's modules by bare name (conftest, test_*, and the kits
# their conftests put on sys.path: gateway_testkit, faults_kit, security_kit), and tests/
# itself is on sys.path (pyproject's pythonpath: stackkit), as is tests/faults for the
# nested security suite. Bare names escape pyproject's override for tests.*, so each run
# passes the same relaxed settings itself. bench/ is code, so it is checked --strict with
# the packages (with its dependency group; its own tests, bench.tests.*, get the override).
MYPY_TEST_DIRS = $(shell find tests libs/*/tests tools/*/tests services/*/tests -name '*.py' -printf '%h\n' | sort -u)
MYPY_TEST_PATH = tests:tests/faults
MYPY_TEST_FLAGS = --allow-untyped-defs --allow-incomplete-defs --allow-untyped-calls --check-untyped-defs

lint: setup ## ruff (lint + format check), mypy --strict on the code, mypy on the tests
	@$(UV) run --frozen ruff check .
	@$(UV) run --frozen ruff format --check .
	@$(UV) run --frozen --quiet --group bench mypy libs/*/src services/*/src tools/*/src bench
	@$(MAKE) --no-print-directory mypy-tests

mypy-tests: setup ## mypy over the tests as make lint runs it (one folder: make mypy-tests MYPY_TEST_DIRS=services/gateway/tests)
	@failed=""; for d in $(MYPY_TEST_DIRS); do \
	  MYPYPATH=$$d:$(MYPY_TEST_PATH) $(UV) run --frozen mypy $(MYPY_TEST_FLAGS) $$d/*.py || failed="$$failed $$d"; \
	done; [ -z "$$failed" ] || { echo "mypy failed in:$$failed"; exit 1; }

format: setup ## Apply ruff's formatting and safe fixes
	@$(UV) run --frozen ruff format .
	@$(UV) run --frozen ruff check --fix .

schemas: setup ## Re-export the contracts' JSON Schemas (libs/contracts/schemas)
	@$(UV) run --frozen python -m flowchat_contracts.schemas

bench: setup ## Every performance target beside its baseline → bench/results/*.json, PNGs, README table (~12 min)
	@$(STACK) servers
	@$(UV) run --frozen --group bench python -m bench $(ARGS)

bench-state-50m: setup ## The state-manager at 50 M stored messages (opt-in: 54 GB of disk, 72 min to build on a loaded 2-core machine; kept for later runs)
	@$(STACK) servers
	@FLOWCHAT_BENCH_STATE_MESSAGES=50000000 $(UV) run --frozen --group bench python -m bench --only state_partitions $(ARGS)

REVS ?= main HEAD
ROUNDS ?= 3
RATES ?= 10,60
bench-turn-ab: setup ## CPU per turn of git revisions, interleaved runs, medians (make bench-turn-ab REVS="6a1da2f HEAD" ROUNDS=3 RATES=10,60; scratch worktrees under /tmp)
	@$(STACK) servers
	@$(UV) run --frozen --group bench python -m bench.turn_ab $(foreach r,$(REVS),--rev $(r)) --rounds $(ROUNDS) --rates $(RATES) $(ARGS)

bench-quick: setup ## The benchmarks at small sizes, one round (CI smoke, < 2 min) → bench/results/quick/
	@$(STACK) servers
	@$(UV) run --frozen --group bench python -m bench --quick $(ARGS)

clean: down ## Stop everything and delete .run/ (logs, local server data, generated secrets)
	@rm -rf .run
