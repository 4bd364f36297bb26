# Two commands on a fresh machine: `make serve` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Test processes for `make test` (pytest-xdist; one file stays in one process, so a module's
# server is started once). 0 runs everything in this process.
TEST_PROCESSES ?= 2

.PHONY: serve test test-clients lint bench bench-scale image clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

serve: $(STAMP)
	$(PY) -m emulator serve --host 127.0.0.1 --port 8000 --data-dir .emulator

test: $(STAMP)
	$(PY) -m ruff check emulator tests bench
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q -n $(TEST_PROCESSES) --dist loadfile

test-clients: $(STAMP)  # every supported client version in its own venv (~/.cache/ibmq-emulator-clients)
	$(PY) tests/clients/matrix.py

lint: $(STAMP)
	$(PY) -m ruff check emulator tests bench
	$(VENV)/bin/lint-imports

bench: $(STAMP)
	$(PY) bench/latency.py
	$(PY) bench/scale_circuits.py
	$(PY) bench/direct_access.py
	$(PY) bench/noise_models.py
	$(PY) bench/throughput.py
	$(PY) bench/mitigation.py

bench-scale: $(STAMP)  # minutes; PostgreSQL rows when IBMQ_EMULATOR_TEST_POSTGRES is set
	$(PY) bench/scale.py
	$(PY) bench/scale.py --circuit heavy --jobs 24
	if [ -n "$$IBMQ_EMULATOR_TEST_POSTGRES" ]; then $(PY) bench/throughput.py --scale-out "$$IBMQ_EMULATOR_TEST_POSTGRES"; fi

image:
	docker build -f docker/Dockerfile -t ibm-quantum-emulator .

clean:
	rm -rf $(VENV) .emulator .pytest_cache .ruff_cache
