# enigm-recover — `make run` (the drill) and `make test` (the whole suite).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: run test bench tools clean screenshots man completions

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

MANDIR ?= build/man
COMPLETIONDIR ?= build/completions

## man: the manual page, generated from the argument parser, into $(MANDIR)/enigm-recover.1
man: $(VENV)/.installed-test
	@mkdir -p $(MANDIR)
	$(BIN)/argparse-manpage --module enigm_recover.cli.parser --function build_parser \
		--project-name enigm-recover --prog enigm-recover \
		--version "$$($(BIN)/enigm-recover --version | cut -d' ' -f2)" --manual-title "enigm-recover manual" \
		--description "recover the Enigm platform's recovery-critical state from sealed, signed snapshots" \
		--output $(MANDIR)/enigm-recover.1

## completions: the bash, zsh and fish completion scripts, generated from the parser, into $(COMPLETIONDIR)
completions: $(VENV)/.installed-run
	@mkdir -p $(COMPLETIONDIR)
	$(BIN)/enigm-recover completion bash > $(COMPLETIONDIR)/enigm-recover.bash
	$(BIN)/enigm-recover completion zsh > $(COMPLETIONDIR)/_enigm-recover
	$(BIN)/enigm-recover completion fish > $(COMPLETIONDIR)/enigm-recover.fish

clean:
	rm -rf $(VENV) .pytest_cache bench/out
