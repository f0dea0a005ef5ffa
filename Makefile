# Parley: `make run` serves the chat, `make test` runs every test. Both install what they need.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin/python
# Django 6 needs Python 3.12+: take the first one found.
PYTHON ?= $(shell for p in python3.13 python3.12 python3; do \
	command -v $$p >/dev/null && $$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null && { echo $$p; break; }; done)
APT_INSTALL := DEBIAN_FRONTEND=noninteractive apt-get install -y -qq
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: help run test test-postgres lint bench bench-deps bench-pages soak screenshots system-deps clean \
	deploy-up deploy-down deploy-restart deploy-status

help:
	@echo "make run     serve the chat at http://127.0.0.1:8000 (SQLite, in-memory channel layer) and"
	@echo "             run its background worker (emails, webhooks)"
	@echo "make test    lint, unit, consumer, PostgreSQL and Playwright end-to-end tests"
	@echo "make bench   real-socket benchmark, Parley beside its baselines (QUICK=1: about 2 minutes)"
	@echo "make bench-pages  room page, older messages and room list under wrk (BASELINE=dir to compare)"
	@echo "make soak    200 users, 2 processes on Redis, one restarted every 2 min (SOAK_MINUTES=1: short)"
	@echo "make deploy-up       the production shape: HAProxy (TLS) at https://127.0.0.1:8443, daphne x 2"
	@echo "                     under supervisor, PostgreSQL and Redis, state in .deploy/"
	@echo "make deploy-restart  rolling restart, one daphne process at a time"
	@echo "make deploy-down     stop all of it (make deploy-status: what runs)"

$(VENV)/.installed: requirements/base.txt requirements/test.txt requirements/deploy.txt
	@test -n "$(PYTHON)" || { echo "Python 3.12 or newer is needed: install it (e.g. apt-get install python3.12 or pyenv install 3.12)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements/test.txt
	touch $@

# Chromium (for Playwright), redis-server, PostgreSQL, HAProxy and openssl (the production shape's
# proxy and certificate) come from the system's packages.
system-deps:
	@missing=""; \
	command -v chromium >/dev/null || command -v chromium-browser >/dev/null || missing="$$missing chromium"; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	[ -x /usr/sbin/haproxy ] || missing="$$missing haproxy"; \
	command -v openssl >/dev/null || missing="$$missing openssl"; \
	if [ -n "$$missing" ]; then \
		if command -v apt-get >/dev/null; then \
			echo "Installing$$missing"; \
			$(SUDO) apt-get update -qq && $(SUDO) $(APT_INSTALL) $$missing; \
		else \
			echo "Please install:$$missing (e.g. brew install redis postgresql chromium)"; exit 1; \
		fi; \
	fi

# The background worker (emails, webhook deliveries: manage.py db_worker) runs beside the server and
# stops with it, however the server ends. It does not reload on code changes as runserver does (its
# reloader's parent would leave its child running when stopped): restart `make run` after changing a task.
run: $(VENV)/.installed
	$(PY) manage.py migrate --noinput
	@$(PY) manage.py db_worker --no-reload & worker=$$!; \
	trap 'kill -TERM $$worker 2>/dev/null; wait $$worker' EXIT; \
	trap 'exit 130' INT TERM; \
	$(PY) manage.py runserver 127.0.0.1:8000

test: $(VENV)/.installed system-deps lint
	$(PY) -m pytest
	$(PY) -m pytest e2e
	$(MAKE) test-postgres

# The unit and consumer tests once more on a real PostgreSQL started for the run.
test-postgres: $(VENV)/.installed system-deps
	$(PY) -m testsupport.with_postgres $(PY) -m pytest chat/tests -q

# Style, types (mypy + django-stubs), one-way layers (import-linter) and migrations in step with models.
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .
	$(VENV)/bin/lint-imports
	$(PY) manage.py makemigrations --check --dry-run

# wrk drives the HTTP rows of `make bench`.
bench-deps:
	@command -v wrk >/dev/null || { \
		if command -v apt-get >/dev/null; then \
			echo "Installing wrk"; \
			$(SUDO) apt-get update -qq && $(SUDO) $(APT_INSTALL) wrk; \
		else \
			echo "Please install: wrk (e.g. brew install wrk)"; exit 1; \
		fi; \
	}

bench: $(VENV)/.installed system-deps bench-deps
	$(PY) -m bench $(if $(QUICK),--quick)

# Needs wrk (apt-get install wrk) and taskset; BASELINE=<another checkout> measures both in one run.
bench-pages: $(VENV)/.installed
	$(PY) -m bench.pages $(if $(BASELINE),--baseline $(BASELINE))

# 10 minutes (SOAK_MINUTES=n): exits 1 if an acknowledged message is lost or anything is doubled.
soak: $(VENV)/.installed system-deps
	$(PY) -m bench.soak $(if $(SOAK_MINUTES),--minutes $(SOAK_MINUTES))

# The production shape on this machine (deploy/shape.py, with the files of deploy/ an operator copies).
deploy-up: $(VENV)/.installed system-deps
	$(PY) -m deploy.shape up

deploy-down: $(VENV)/.installed system-deps
	$(PY) -m deploy.shape down

# One process at a time: drained in HAProxy, SIGTERM, started, back once its /healthz says ok.
deploy-restart: $(VENV)/.installed system-deps
	$(PY) -m deploy.shape restart

deploy-status: $(VENV)/.installed
	$(PY) -m deploy.shape status

screenshots: $(VENV)/.installed system-deps
	$(PY) -m pytest e2e/test_look.py -q

clean:
	rm -rf $(VENV) staticfiles e2e/screenshots .pytest_cache .ruff_cache
