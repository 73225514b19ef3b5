# The README's commands. `make demo` and `make test` each create .venv when it is missing and
# reuse it while pyproject.toml and constraints.txt are unchanged.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
KERNEL := workbench

.PHONY: venv demo test test-fast lint bench lab lock clean plant

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	$(BIN)/python -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python (workbench)" >/dev/null
	@touch $(STAMP)

# Build the demo plant, then run the main job for its last day: the HTML report and the e-mail
# (written to reports/outbox/ unless WORKBENCH_SMTP_HOST is set).
demo: venv
	$(BIN)/workbench demo
	$(BIN)/workbench run retrain --force
	$(BIN)/workbench run daily_report

# The sync path reads configured names and fetched values: no SQL of it may be built from text
# (bandit B608; tests/sources/test_sync_config.py checks the same by parsing the code).
SQL_SAFE := src/workbench/sources/erp.py src/workbench/sources/machinemetrics.py \
            src/workbench/sources/sync.py src/workbench/sources/syncs.py src/workbench/sources/health.py \
            src/workbench/simulate/erp.py

test: venv
	$(BIN)/ruff check src flows tests benchmarks
	$(BIN)/bandit -q -t B608 $(wildcard $(SQL_SAFE))
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: venv
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check src flows tests benchmarks

bench: venv
	$(BIN)/python benchmarks/bench_store_load.py
	$(BIN)/python benchmarks/bench_oee.py
	$(BIN)/python benchmarks/bench_pipeline.py

lab: venv
	$(BIN)/workbench lab

# Watch data arrive: the simulated plant's PLCs (KEPServerEX MQTT, OPC UA, Modbus) at 60x, and the
# collector writing into data/live.duckdb (a warehouse of its own, so the demo plant's history is not
# mixed with it; WORKBENCH_DATABASE_URL still wins). Ctrl-C stops both.
plant: venv
	export WORKBENCH_DUCKDB_PATH=$${WORKBENCH_DUCKDB_PATH:-data/live.duckdb}; \
	$(BIN)/workbench db init && \
	{ $(BIN)/workbench simulate serve --speed 60 --tags-out data/simulated/tags.yaml & sim=$$!; \
	  trap "kill $$sim 2>/dev/null" EXIT INT TERM; sleep 15; \
	  $(BIN)/workbench collect --tags data/simulated/tags.yaml; }

# Re-resolve the pins on a scratch venv (needs the package registry); review the diff.
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet --upgrade pip
	.lock-venv/bin/pip install --quiet -e '.[dev]'
	.lock-venv/bin/pip freeze --exclude-editable > constraints.txt.new && rm -rf .lock-venv
	@echo "wrote constraints.txt.new — move it over constraints.txt, then 'make test' (the served-schedule test proves the scheduler fires)"

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
