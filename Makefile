# Developer entry points. Each creates what it needs; nothing has to be installed first
# except a Python >= 3.10 (PYTHON, default python3).
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
# Core test matrix: every CPython 3.10-3.13 found under pyenv or on PATH.
MATRIX ?= 3.10 3.11 3.12 3.13

.PHONY: help demo test lint format typecheck bench bench-quick bench-faces bench-magics bench-health bench-audit audit chaos notebooks matrix kernel6 check clean

help:
	@echo "make demo        run python -m loopbridge demo"
	@echo "make test        the full test suite (real kernel, Redis, PostgreSQL, aiohttp)"
	@echo "make lint        ruff check + ruff format --check"
	@echo "make typecheck   mypy --strict on src/ and the typing test file"
	@echo "make bench       benchmarks/bridge_latency.py (about 3 minutes)"
	@echo "make bench-faces benchmarks/faces.py: map_sync and sync_face against peers"
	@echo "make bench-magics benchmarks/magics.py: %aio tasks / %aio loops on 10,000 tasks"
	@echo "make bench-health benchmarks/health.py: what loop health costs, idle and busy"
	@echo "make bench-audit benchmarks/audit.py: the audit beside ruff and flake8-async"
	@echo "make audit       the audit on this project, and its corpus quality table"
	@echo "make chaos       interrupts, load, fork, close races, leaks, fuzz (about 3 minutes)"
	@echo "make notebooks   re-run notebooks/*.ipynb and store their outputs"
	@echo "make matrix      core tests on Python $(MATRIX)"
	@echo "make kernel6     extension, kernel and notebook tests on ipykernel 6 + IPython 8"
	@echo "make check       lint + typecheck + test + matrix (what CI runs)"

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

demo: $(BIN)/.installed
	$(BIN)/python -m loopbridge demo

test: $(BIN)/.installed
	$(BIN)/python -m pytest

lint: $(BIN)/.installed
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts

format: $(BIN)/.installed
	$(BIN)/ruff format src tests benchmarks scripts
	$(BIN)/ruff check --fix src tests benchmarks scripts

typecheck: $(BIN)/.installed
	$(BIN)/mypy
	$(BIN)/mypy --strict tests/typing_check.py

bench: $(BIN)/.installed
	$(BIN)/python benchmarks/bridge_latency.py
	$(BIN)/python benchmarks/faces.py
	$(BIN)/python benchmarks/magics.py

bench-quick: $(BIN)/.installed
	$(BIN)/python benchmarks/bridge_latency.py --quick
	$(BIN)/python benchmarks/faces.py --quick
	$(BIN)/python benchmarks/magics.py --quick
	$(BIN)/python benchmarks/health.py --quick
	$(BIN)/python benchmarks/audit.py --quick

bench-faces: $(BIN)/.installed
	$(BIN)/python benchmarks/faces.py

bench-magics: $(BIN)/.installed
	$(BIN)/python benchmarks/magics.py

bench-health: $(BIN)/.installed
	$(BIN)/python benchmarks/health.py

bench-audit: $(BIN)/.installed
	$(BIN)/python benchmarks/audit.py

audit: $(BIN)/.installed
	$(BIN)/loopbridge-audit src tests benchmarks scripts notebooks
	$(BIN)/python scripts/audit_quality.py

# Not part of `make test`: the bounded interrupt run is (tests/test_chaos.py).
chaos: $(BIN)/.installed
	timeout 300 $(BIN)/python scripts/chaos.py

notebooks: $(BIN)/.installed
	cd notebooks && for nb in *.ipynb; do ../$(BIN)/jupyter execute --inplace "$$nb" || exit 1; done

matrix:
	@bash scripts/matrix.sh $(MATRIX)

kernel6:
	@PYTHON=$(PYTHON) bash scripts/ipykernel6.sh

check: lint typecheck test matrix kernel6

clean:
	rm -rf $(VENV) .venv-3.* .venv-ipykernel6 .pytest_cache .mypy_cache .ruff_cache build dist src/*.egg-info
