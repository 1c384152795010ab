# The documented commands. `make help` lists them.
SHELL := /bin/bash
UV_VERSION := 0.13.8
PYTHON ?= python3
VENV := .venv
UV := $(shell command -v uv 2>/dev/null)
ifeq ($(UV),)
UV := $(PYTHON) -m uv
endif

.PHONY: help install browser demo up test test-fast lint format typecheck synth openapi benchmark benchmark-bandit benchmark-drift benchmark-console benchmark-features drift-power clean benchmark-batch

help: ## List the commands
	@grep -E '^[a-z-]+:.*?## ' $(MAKEFILE_LIST) | awk -F':.*?## ' '{printf "  make %-12s %s\n", $$1, $$2}'

# --compile-bytecode: uv installs no .pyc, and where PYTHONDONTWRITEBYTECODE is set (as here)
# none is ever written, so every process compiled its imports again: 5.9 s against 2.0 s to
# import scikit-learn, boto3, moto and the CDK; the suite starts dozens of processes.
$(VENV)/.installed: pyproject.toml uv.lock package-lock.json
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet "uv==$(UV_VERSION)"
	$(UV) sync --locked --all-extras --no-extra bench --compile-bytecode
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

install: $(VENV)/.installed ## Create .venv with every pinned dependency (uv.lock)

# Browser tests drive Debian's Chromium headless (the release's package: apt pins it).
# Installed when missing and this runs as root (CI); otherwise those tests skip, saying so.
browser: ## Install Debian's chromium for the browser tests (as root; ~20 s)
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing Debian's chromium for the browser tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; \
	else echo "note: chromium not installed (not root): the browser tests will skip; sudo apt-get install chromium"; fi

demo: install ## Run the local stack: train the sample model with the workflow, promote it, serve it on :3000
	$(VENV)/bin/mlops up --demo

up: install ## Run the local stack without the demo (empty registry)
	$(VENV)/bin/mlops up

# --no-loadscope-reorder: xdist otherwise hands out the files with the most tests first, which
# leaves the e2e modules (few tests, each minutes long) for the end of the run; in collection
# order they start first (tests/e2e) and the many short files fill in around them.
# --dist loadgroup: one file per unit of work, as --dist loadfile, but the infra modules that use
# the synthesized CDK app are one unit, so the app is synthesized once (tests/conftest.py).
# One worker more than cores: the e2e modules spend much of their time waiting on their local
# stack's process, and a third worker fills those waits (2 cores, idle: 454 s with 3 workers,
# 613 s with 2; docs/decision_log.md).
TEST_WORKERS ?= $(shell echo $$(( $$(nproc) + 1 )))
test: install browser ## Install, then run the whole test suite (what CI runs), on every core
	$(VENV)/bin/python -m pytest -n $(TEST_WORKERS) --dist loadgroup --no-loadscope-reorder

test-fast: install ## Unit and integration tests only (no CDK synth, no local stack)
	$(VENV)/bin/python -m pytest -n auto tests/unit tests/integration

lint: install ## ruff lint + format check + the architecture's import contracts
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

format: install ## Apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

typecheck: install ## mypy --strict over the deployed code, mypy over the infrastructure
	$(VENV)/bin/mypy --strict layers/core/mlops_core functions
	$(VENV)/bin/mypy layers/core/mlops_core functions infra

synth: install ## Synthesize the CDK app (no Docker needed)
	npx cdk synth --quiet

openapi: install ## Regenerate docs/openapi.json from the handlers and the template
	$(VENV)/bin/python -m infra.cdk.openapi > docs/openapi.json

benchmark: install ## Run the benchmarks and print the ratios recorded in docs/benchmarks.md
	$(VENV)/bin/python benchmarks/inference_cold_warm.py

benchmark-bandit: install ## Bandit regret and decision latency vs MABWiser (adds the bench extra; ~3 min on 2 idle cores)
	$(UV) sync --locked --all-extras
	$(VENV)/bin/python benchmarks/bandit_regret.py

benchmark-drift: install ## Drift: ours vs Evidently's DataDriftPreset, a scipy loop and river's ADWIN (adds the bench extra)
	$(UV) sync --locked --all-extras
	$(VENV)/bin/python benchmarks/drift.py

benchmark-console: install ## Model console page times on the local stack (50 runs, 20 versions) vs the JSON routes
	$(VENV)/bin/python benchmarks/console.py

# Feast cannot share the project's lock (docs/decision_log.md): it gets its own virtualenv.
benchmark-features: install ## Feature store: materialization and lookups vs Feast 0.67 on moto (builds .venv-feast; ~10 min)
	$(UV) venv .venv-feast --python 3.11 --allow-existing --quiet
	$(UV) pip sync --python .venv-feast/bin/python benchmarks/feast/requirements.txt
	$(VENV)/bin/python benchmarks/features.py

benchmark-batch: install ## Batch scoring rows/s per core vs pandas + joblib + scikit-learn predict_proba (adds the bench extra)
	$(UV) sync --locked --all-extras
	$(VENV)/bin/python benchmarks/batch.py

drift-power: install ## Detection power by shift and window size, and false alarms; rewrites the table in docs/drift.md
	$(VENV)/bin/python benchmarks/drift_power.py

clean: ## Remove build outputs and caches (keeps .venv)
	rm -rf cdk.out .cache .pytest_cache .ruff_cache .mypy_cache .venv-feast
