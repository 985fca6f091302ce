# Bastion: the two commands of the quickstart are `make demo` and `make test`.
# Both create (or reuse) .venv and install the pinned dependencies first.
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && { echo $$p; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit bench install native clean

$(STAMP): pyproject.toml constraints.txt
	@test -n "$(PYTHON)" || { echo "Bastion needs Python >= 3.11 on PATH" >&2; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

# The contract's hot path compiled with mypyc (src/bastion/native.py; skipped when current).
# Without a C compiler it says why and Bastion runs as pure Python: same behaviour, slower.
native: $(STAMP)
	$(BIN)/python -P src/bastion/native.py build --allow-failure

install: $(STAMP) native

demo: $(STAMP) native
	$(BIN)/bastion demo

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy src

unit: $(STAMP) native
	$(BIN)/pytest -n 2 --dist loadfile

test: lint typecheck unit

bench: $(STAMP) native
	$(BIN)/python bench/run.py

clean:
	-test -x $(BIN)/python && $(BIN)/python -P src/bastion/native.py clean
	rm -rf $(VENV) build *.egg-info .mypy_cache .pytest_cache .ruff_cache
