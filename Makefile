# enigm-recover — `make run` (the drill) and `make test` (the whole suite).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: run test bench tools clean screenshots

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Editable installs in compat mode: a plain path in a .pth file. The default mode imports a finder module
# at every interpreter start-up, about 9 ms of each command's start.
$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check --config-settings editable_mode=compat -e .
	@touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check --config-settings editable_mode=compat -e ".[test]"
	@touch $@ $(VENV)/.installed-run

## run: make a drill (synthetic platform, keys, snapshots, damaged target) and walk it
run: $(VENV)/.installed-run
	$(BIN)/enigm-recover drill

## tools: install the real programs the tests use (age, ssh-keygen, zstd, sqlite3) when missing
tools:
	@scripts/ensure-tools

## test: the whole suite against the real tools
test: $(VENV)/.installed-test tools
	$(BIN)/python -m pytest

## screenshots: regenerate screenshots/*.svg (one per stage of the app) from a seeded drill
screenshots: $(VENV)/.installed-run
	$(BIN)/python -m enigm_recover.app.screenshots screenshots

## bench: speed and memory goals, as ratios against standard tools in the same run
bench: $(VENV)/.installed-test tools
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache bench/out
