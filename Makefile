# The README's commands. Python 3.11 is the only prerequisite.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
HOST ?= 127.0.0.1
PORT ?= 8000
# The embedded defaults for trying it out: DEBUG on, SQLite under var/, tasks in-process.
# Set these (or a .env file) to run otherwise; see README "Configuration".
export DEBUG ?= 1

.PHONY: test-tools install run test migrate seed lint format check-deploy lock clean bench bench-ci serve

$(BIN)/.installed: requirements.lock pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is needed ($(PYTHON) not found)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade "pip==25.3"
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -r requirements.lock
	$(PY) -m pip check
	@mkdir -p var/staticfiles
	@touch $@

install: $(BIN)/.installed  ## .venv with the pinned dependencies

LOCALSTRIPE := .venv-tools/localstripe
$(LOCALSTRIPE)/.installed: tools/localstripe.lock
	test -x $(LOCALSTRIPE)/bin/python || $(PYTHON) -m venv $(LOCALSTRIPE)
	$(LOCALSTRIPE)/bin/pip install --quiet --disable-pip-version-check --no-deps -r tools/localstripe.lock
	@touch $@

# axe-core for the browser tests' accessibility check, pinned by tools/axe/package-lock.json and
# injected from disk. Without npm the rule only says so, and that test skips with the reason.
AXE_DIR ?= .venv-tools/axe
export AXE_DIR
$(AXE_DIR)/.installed: tools/axe/package.json tools/axe/package-lock.json
	@if command -v npm >/dev/null; then \
	  mkdir -p $(AXE_DIR) && cp tools/axe/package.json tools/axe/package-lock.json $(AXE_DIR)/ && \
	  npm ci --prefix $(AXE_DIR) --ignore-scripts --no-audit --no-fund --loglevel=error && \
	  touch $@; \
	else echo "npm not found: the accessibility check (tests/e2e/test_every_screen.py) will skip"; fi

test-tools: $(LOCALSTRIPE)/.installed $(AXE_DIR)/.installed  ## local Stripe server, axe-core

# A development .env (DEBUG=1, random SECRET_KEY and field key) when there is none, so that
# `.venv/bin/python manage.py ...` works as the README writes it. An existing .env is kept.
.env:
	$(PYTHON) tools/dev_env.py $@

migrate: install | .env
	$(PY) manage.py migrate --no-input

seed: migrate
	HOST=$(HOST) PORT=$(PORT) $(PY) manage.py seed_demo
	$(PY) manage.py refresh_rollups --days 90 --verbosity 0

run: seed  ## install, write .env if missing, migrate, load demo data, serve on HOST:PORT
	@echo "Serving on http://$(HOST):$(PORT)/admin/  (Ctrl-C to stop)"
	$(PY) manage.py runserver $(HOST):$(PORT)

# Production: gunicorn (config/gunicorn.conf.py) with DEBUG off. Every setting comes from the
# environment (never from the development .env's defaults for what is checked); it says what is
# missing before it starts, shows Django's deployment warnings, collects static files and
# applies migrations.
serve: export DEBUG = 0
serve: install  ## production server: gunicorn with production settings (README "Deployment")
	$(PYTHON) tools/serve_check.py
	$(PY) manage.py check --deploy --fail-level ERROR
	$(PY) manage.py collectstatic --no-input --verbosity 0
	$(PY) manage.py migrate --no-input
	exec $(BIN)/gunicorn --config config/gunicorn.conf.py

# With DATABASE_URL set (PostgreSQL, as in CI) the broker tests use the local Redis too, so
# nothing is skipped; on the embedded SQLite default they are skipped with the reason.
test: install test-tools  ## the whole suite: PostgreSQL when DATABASE_URL is set, else SQLite
	$(if $(DATABASE_URL),TEST_REDIS_URL=$${TEST_REDIS_URL:-redis://127.0.0.1:6379/15}) \
	$(BIN)/pytest $(PYTEST_ARGS)

# mypy's django-stubs plugin imports the settings, which need DEBUG on to start without secrets.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/bandit -q -c pyproject.toml -r config payments kyc audits
	DEBUG=1 $(BIN)/mypy
	$(BIN)/lint-imports --no-cache

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

check-deploy: install  ## Django's deployment checks against production-like settings
	DEBUG=0 SECRET_KEY=$$(openssl rand -hex 32) ALLOWED_HOSTS=backoffice.example.com \
	FIELD_ENCRYPTION_KEYS=$$($(PY) -c "import base64,os;print(base64.urlsafe_b64encode(os.urandom(32)).decode())") \
	AUDIT_CHECKPOINT_SIGNING_KEY=$$($(PY) -c "import base64,os;print(base64.urlsafe_b64encode(os.urandom(32)).decode())") \
	$(PY) manage.py check --deploy --fail-level WARNING

lock:  ## re-resolve the pins from pyproject.toml into requirements.lock
	rm -rf /tmp/backoffice-lock && $(PYTHON) -m venv /tmp/backoffice-lock
	/tmp/backoffice-lock/bin/pip install --quiet ".[dev]"
	( echo "# The whole dependency tree, pinned (regenerate: \`make lock\`). make install installs this."; \
	  /tmp/backoffice-lock/bin/pip freeze --exclude backoffice ) > requirements.lock

clean:
	rm -rf $(VENV) var/db.sqlite3

# Each bench writes var/bench/<bench>.json; bench/summary.py ends with every figure beside its
# floor and target, and the plots (var/bench/*.png). Figures of an earlier run are cleared first.
bench: install  ## the audit trail's cost per change and its verification (full, incremental); the audit CSV and evidence exports; key rotation; staff lists, the overview and a /metrics scrape at volume; every list and search at 10k and 1M payments; fraud scoring per payment at 10k and 1M stored; the demo's load time; screening at list size; generate_data; webhook ingest and processing (see bench/); a summary table and plots
	rm -f var/bench/*.json var/bench/*.png
	$(PY) bench/audit_overhead.py $(OVERHEAD_BENCH_ARGS)
	$(PY) bench/audit_verify.py $(AUDIT_BENCH_ARGS)
	$(PY) bench/audit_export.py $(EXPORT_BENCH_ARGS)
	$(PY) bench/key_rotation.py $(ROTATION_BENCH_ARGS)
	$(PY) bench/console_lists.py $(BENCH_ARGS)
	$(PY) bench/overview.py $(BENCH_ARGS)
	$(PY) bench/metrics_scrape.py $(BENCH_ARGS)
	$(PY) bench/fraud_scoring.py $(FRAUD_BENCH_ARGS)
	$(PY) bench/demo_load.py $(DEMO_BENCH_ARGS)
	$(PY) bench/screening.py $(SCREENING_BENCH_ARGS)
	$(PY) bench/volume.py $(VOLUME_BENCH_ARGS)
	$(PY) bench/webhook_ingest.py $(INGEST_BENCH_ARGS)
	$(PY) bench/webhook_processing.py $(PROCESSING_BENCH_ARGS)
	$(PY) bench/lists_at_volume.py $(LISTS_BENCH_ARGS)
	$(PY) bench/summary.py

# The same measures at a small size, as CI runs them: the figures are printed, never asserted
# (a shared CI machine's timings say nothing); what CI checks is that every bench still runs.
bench-ci: install  ## make bench at a small size (what .ci/run runs)
	$(MAKE) bench OVERHEAD_BENCH_ARGS="--changes 100 --rounds 1" AUDIT_BENCH_ARGS="--rows 5000" EXPORT_BENCH_ARGS="--rows 5000" \
	  ROTATION_BENCH_ARGS="--values 3000" BENCH_ARGS="--rows=2000" FRAUD_BENCH_ARGS="--large 20000" \
	  DEMO_BENCH_ARGS="--days 30" \
	  SCREENING_BENCH_ARGS="--entries 2000 --names 50 --merchants 200 --difflib-sample 1" \
	  VOLUME_BENCH_ARGS="--merchants 20 --payments 2000 --kyc-cases 200 --audit-rows 5000" \
	  INGEST_BENCH_ARGS="--seconds 2 --rounds 1" PROCESSING_BENCH_ARGS="--payments 50" \
	  LISTS_BENCH_ARGS="--sizes 0.001,0.005 --repeat 5"
