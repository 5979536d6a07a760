# The two commands a newcomer needs: `make run` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: help install run test test-tools test-unit lint fmt lock preflight bench bench-ab bench-env bench-tracing bench-floor bench-partitions bench-replication profile faults cluster bed fuzz up down clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

$(STAMP): requirements-dev.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.lock
	$(BIN)/pip install --quiet --no-deps -e .
	@touch $(STAMP)

install: $(STAMP) ## create .venv with the locked dependencies

preflight: $(STAMP) ## check that Postgres and RabbitMQ answer, and say how to start them if not
	$(BIN)/ordersystem preflight

run: $(STAMP) ## start every process of the system (Ctrl-C stops them all)
	$(BIN)/ordersystem run

test: $(STAMP) test-tools ## unit, integration and end-to-end tests (needs Postgres and RabbitMQ)
	$(BIN)/ordersystem preflight
	$(BIN)/pytest -q

test-tools: ## install the tools the tests run beside the servers (Prometheus, HAProxy, iproute2), when missing
	@sh .ci/test-tools

test-unit: $(STAMP) ## only the tests that need no server
	$(BIN)/pytest -q -m "not integration and not e2e"

FAULT_PARTITIONS ?= 1
faults: $(STAMP) ## the fault suite at full size, three times in a row (FAULT_PARTITIONS=4: in four partitions; 1,4: both): writes docs/reliability.md
	$(BIN)/ordersystem preflight
	rm -f .faults.jsonl
	for run in 1 2 3; do \
		FAULT_ORDERS=5000 FAULT_PARTITIONS=$(FAULT_PARTITIONS) FAULT_REPORT=.faults.jsonl \
		$(BIN)/pytest -q -p no:cacheprovider tests/faults/test_system_faults.py || exit 1; \
	done
	$(BIN)/python -m tests.faults.report .faults.jsonl docs/reliability.md

CLUSTER_ORDERS ?= 2000
cluster: $(STAMP) test-tools ## the multi-host bed's faults at full size (CLUSTER_ORDERS each), three runs in a row, one bed each: writes docs/reliability.md's "Across hosts" (every server's log in .cluster-logs/<run>)
	rm -rf .cluster.jsonl .cluster-logs
	for run in 1 2 3; do \
		mkdir -p .cluster-logs/$$run; \
		FAULT_ORDERS=$(CLUSTER_ORDERS) FAULT_REPORT=.cluster.jsonl BED_LOGS=.cluster-logs/$$run \
		$(BIN)/pytest -q -p no:cacheprovider tests/cluster || exit 1; \
	done
	$(BIN)/python -m tests.faults.report .cluster.jsonl docs/reliability.md --across-hosts

bed: $(STAMP) test-tools ## start the multi-host bed and keep it until Ctrl-C (needs root)
	$(BIN)/python -m tests.bed

FUZZ_EXAMPLES ?= 3000
fuzz: $(STAMP) ## hostile bytes to every endpoint, FUZZ_EXAMPLES each (make test sends 300), drawn anew
	$(BIN)/ordersystem preflight
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) FUZZ_RANDOM=1 $(BIN)/pytest -q -p no:cacheprovider tests/e2e/fuzz

bench: $(STAMP) ## benchmarks, side by side with the baseline (about half an hour): writes docs/benchmarks.md
	$(BIN)/ordersystem preflight
	$(BIN)/python -m bench

profile: $(STAMP) ## py-spy every process of the whole system at PROFILE_RATE orders/s (default 100)
	$(BIN)/ordersystem preflight
	$(BIN)/python -m bench.profile

BASE   ?= HEAD~1
ROUNDS ?= 3
bench-ab: $(STAMP) ## this checkout vs BASE (a git revision): the whole system at fixed rates and saturation, interleaved
	$(BIN)/ordersystem preflight
	$(BIN)/python -m bench.ab $(BASE) $(ROUNDS)

bench-env: $(STAMP) ## this checkout with VAR set to each of VALUES (comma-separated), interleaved
	$(BIN)/ordersystem preflight
	$(BIN)/python -m bench.ab --env $(VAR)=$(VALUES) $(ROUNDS)

bench-tracing: $(STAMP) ## this checkout with tracing off and on (spans to a local OTLP sink), interleaved
	$(BIN)/ordersystem preflight
	$(BIN)/python -m bench.ab --tracing $(ROUNDS)

bench-floor: $(STAMP) ## what RabbitMQ alone spends on one order's messages (FLOOR_ORDERS, FLOOR_BATCHES)
	$(BIN)/python -m bench.floor

bench-partitions: $(STAMP) ## apply rate of a partitioned read model, by partitions and projector processes (PARTITIONS_P, PARTITIONS_K)
	$(BIN)/ordersystem preflight
	$(BIN)/python -m bench.partitions

bench-replication: $(STAMP) test-tools ## what synchronous replication costs a commit, primary and standby on hosts of their own (REPLICATION_CLIENTS, REPLICATION_ROUNDS; needs root)
	$(BIN)/python -m bench.replication

lint: $(STAMP) ## ruff, mypy --strict, import-linter
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

fmt: $(STAMP) ## format and autofix
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

lock: $(STAMP) ## re-resolve both lock files from pyproject.toml (runtime; runtime + dev)
	$(BIN)/pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --python-version 3.11 --no-header -o requirements.lock
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 --no-header \
		-o requirements-dev.lock

up: ## the same system in Docker (needs a Docker engine)
	docker compose up --build

down: ## stop the Docker system
	docker compose down

clean: ## remove the virtualenv and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
