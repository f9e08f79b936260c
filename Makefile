# Three commands matter: `make demo`, `make check` (before every commit) and `make test` (the whole suite).
# Everything installs into .venv (no root, no Docker).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv check test test-serial lint demo up run bench chaos image-check clean

$(STAMP): requirements.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Python 3.11+ is required" or 0)'
	@# A venv left without pip by a failed creation is made again rather than reused.
	@test -x $(BIN)/pip || { rm -rf $(VENV) && $(PYTHON) -m venv $(VENV); } || { rm -rf $(VENV); \
	  echo "'$(PYTHON) -m venv' failed: on Debian/Ubuntu it needs the python3-venv package (python3.X-venv)"; exit 1; }
	$(BIN)/python -m pip install --quiet pip==26.3
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

venv: $(STAMP)

# Tests run in TEST_WORKERS parallel pytest-xdist workers, each with a Redis, S3 servers and a sandbox of its own on
# free loopback ports; modules whose tests must share one worker are listed in tests/conftest.py (ONE_WORKER_MODULES).
# Most tests wait on processes rather than compute, so more workers than cores pay off. TEST_WORKERS=0: no workers.
TEST_WORKERS ?= 3
PYTEST := $(BIN)/python -m pytest -n $(TEST_WORKERS)

# Before every commit: lint, then the unit and integration tests (under 3 minutes on 2 cores).
check: lint
	$(PYTEST) tests/unit tests/integration

# The whole suite (.ci/run runs it; under 10 minutes on 2 cores). A subset: make test ARGS=tests/e2e, or
# ARGS="-k webhook tests/integration".
test: $(STAMP)
	$(PYTEST) $(ARGS)

# The whole suite in this one process, one test after another (as before the workers).
test-serial: $(STAMP)
	$(BIN)/python -m pytest $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

demo: $(STAMP)
	$(BIN)/python -m scripts.demo

# The demo, then the local stack keeps running: open the console it prints (Ctrl-C stops everything).
up: $(STAMP)
	$(BIN)/python -m scripts.demo --stay

# The relay on this machine against your Twilio account and bucket, settings from .env (see .env.example);
# Ctrl-C stops it. ARGS: e.g. ARGS="--port 9000" (scripts/run.py --help).
run: $(STAMP)
	$(BIN)/python -m scripts.run $(ARGS)

# All benchmarks against SeaweedFS -> bench/results.json (bench/README.md). ARGS: e.g. ARGS=--with-5gib (adds the
# 5 GiB day), ARGS="--only copy_throughput --merge", ARGS=--profile.
bench: $(STAMP)
	$(BIN)/python -m bench.run_all $(ARGS)

chaos: $(STAMP)
	CHAOS_LONG=1 $(BIN)/python -m pytest tests/chaos

# As root, no Docker engine needed: build the image with buildah and run every role from it (deploy/README.md).
image-check: $(STAMP)
	deploy/image-check.sh

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .demo .bench
