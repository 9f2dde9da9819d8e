# warning_system: the README's two commands are `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip

# Services for `make test` (the machine's PostgreSQL and Redis; the broker is started if absent).
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/test
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15
TEST_KAFKA ?= 127.0.0.1:9092
PYTEST_ARGS ?=

.PHONY: run test fuzz install install-dev browser bench clean

$(VENV)/.installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements-dev.txt requirements.txt $(VENV)/.installed
	$(PIP) install -q -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

## run: the embedded default (SQLite, local-memory cache, eager pipeline) on http://127.0.0.1:8000
EMBEDDED := env -u DATABASE_URL -u REDIS_URL -u KAFKA_BOOTSTRAP_SERVERS -u DJANGO_SETTINGS_MODULE
run: install
	mkdir -p var
	$(EMBEDDED) $(PY) manage.py migrate --noinput
	$(EMBEDDED) $(PY) manage.py seed_demo --key-file var/demo.key
	$(EMBEDDED) $(PY) scripts/run_demo.py

## browser: Debian's chromium for the Playwright tests of the analyst pages
browser:
	@test -x /usr/bin/chromium || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)

## test: the whole suite against PostgreSQL, Redis and the Kafka-protocol broker
test: install-dev browser
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} \
	REDIS_URL=$${REDIS_URL:-$(TEST_REDIS_URL)} \
	KAFKA_BOOTSTRAP_SERVERS=$${KAFKA_BOOTSTRAP_SERVERS:-$(TEST_KAFKA)} \
	$(PY) scripts/services.py $(PY) -m pytest $(PYTEST_ARGS)

## fuzz: the schema fuzzing of tests/security/test_schema_fuzz.py with 1,000 examples per operation (make test runs 10)
fuzz: install-dev
	FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-1000} $(MAKE) test PYTEST_ARGS="tests/security/test_schema_fuzz.py -q"

## bench: the benchmarks of docs/benchmarks.md on this machine (PostgreSQL, Redis, broker); BENCH_ARGS=--quick for a smoke test
bench: install-dev
	@command -v wrk >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null)
	$(PY) bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) db.sqlite3 staticfiles .pytest_cache
