# enigm-recover — `make run` (the drill) and `make test` (the whole suite).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/pip --quiet --disable-pip-version-check
# Every dependency is installed at the version and hash of a lock file (`make lock` refreshes them):
# requirements.lock for the tool, requirements-dev.lock for the tests and the bundle's build tools.
LOCK     := requirements.lock
DEV_LOCK := requirements-dev.lock
DIST     ?= dist
# The SSH private key that signs the bundle's SHA256SUMS (namespace enigm-bundle).
BUNDLE_SIGN_KEY ?=

.PHONY: run test bench tools clean screenshots lock bundle man completions

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Editable installs in compat mode: a plain path in a .pth file. The default mode imports a finder module
# at every interpreter start-up, about 9 ms of each command's start.
$(VENV)/.installed-run: pyproject.toml $(LOCK) | $(BIN)/python
	$(PIP) install --require-hashes -r $(LOCK)
	$(PIP) install --no-deps --config-settings editable_mode=compat -e .
	@touch $@

# The dev lock holds the build backend too: the project installs without fetching anything unpinned.
$(VENV)/.installed-test: pyproject.toml $(DEV_LOCK) | $(BIN)/python
	$(PIP) install --require-hashes -r $(DEV_LOCK)
	$(PIP) install --no-deps --no-build-isolation --config-settings editable_mode=compat -e .
	@touch $@ $(VENV)/.installed-run

## run: make a drill (synthetic platform, keys, snapshots, damaged target) and walk it
run: $(VENV)/.installed-run
	$(BIN)/enigm-recover drill

## tools: install the real programs the tests use (age, ssh-keygen, zstd, sqlite3, node + npm age-encryption) when missing
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

## lock: pin every dependency with its hashes (UPGRADE=--upgrade moves them to the newest allowed)
lock: | $(BIN)/python
	$(PIP) install uv==0.13.9
	$(BIN)/uv pip compile pyproject.toml --extra test --extra bundle --generate-hashes --universal \
		--python-version 3.11 --quiet $(UPGRADE) -o $(DEV_LOCK)
	$(BIN)/uv pip compile pyproject.toml -c $(DEV_LOCK) --generate-hashes --universal \
		--python-version 3.11 --quiet -o $(LOCK)

## bundle: the offline bundle in $(DIST)/: wheel, wheelhouse, single-file executable, SHA256SUMS(.sig)
bundle: $(VENV)/.installed-test
	PATH="$(CURDIR)/$(BIN):$$PATH" scripts/make-bundle "$(DIST)" "$(BUNDLE_SIGN_KEY)"

MANDIR ?= build/man
COMPLETIONDIR ?= build/completions

## man: the manual page, generated from the argument parser, into $(MANDIR)/enigm-recover.1
man: $(VENV)/.installed-test
	PATH="$(abspath $(BIN)):$$PATH" scripts/make-man "$(MANDIR)"

## completions: the bash, zsh and fish completion scripts, generated from the parser, into $(COMPLETIONDIR)
completions: $(VENV)/.installed-run
	@mkdir -p $(COMPLETIONDIR)
	$(BIN)/enigm-recover completion bash > $(COMPLETIONDIR)/enigm-recover.bash
	$(BIN)/enigm-recover completion zsh > $(COMPLETIONDIR)/_enigm-recover
	$(BIN)/enigm-recover completion fish > $(COMPLETIONDIR)/enigm-recover.fish

clean:
	rm -rf $(VENV) .pytest_cache bench/out build $(DIST)
