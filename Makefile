# Two commands on a fresh machine: `make run` and `make test`. Each creates .venv if missing.
# `make dist` builds the one-file binary dist/photoslot (dist\photoslot.exe on Windows).
PYTHON ?= python3
VENV := .venv
ifeq ($(OS),Windows_NT)
  BIN := $(VENV)/Scripts
  DIST_BIN := dist/photoslot.exe
else
  BIN := $(VENV)/bin
  DIST_BIN := dist/photoslot
endif
# PyInstaller's own cache (analysed binaries) stays inside the tree: a second build in the same
# run or checkout reuses it instead of starting over.
export PYINSTALLER_CONFIG_DIR := $(CURDIR)/build/pyinstaller-cache

.PHONY: run test bench docs diagrams dist clean screenshots

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python setup.cfg pyproject.toml
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

$(VENV)/.installed-dist: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[dist]'
	touch $@

run: $(VENV)/.installed
	$(BIN)/photoslot serve

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest -q

bench: $(VENV)/.installed-test
	$(BIN)/python bench/run.py

# docs/images/: the web admin's pages, as the browser tests see them (docs/ADMIN.md shows them)
screenshots: $(VENV)/.installed-test
	PHOTOSLOT_SCREENSHOTS=$(CURDIR)/docs/images $(BIN)/python -m pytest -q tests/acceptance/test_web_admin.py tests/acceptance/test_web_event_day.py

# docs/CLI.md's command reference, from the real `--help` of every command
docs: $(VENV)/.installed
	$(BIN)/python docs/cli_reference.py

# docs/diagrams/*.svg from their Graphviz sources (Debian: apt-get install graphviz); commit both.
# tests/unit/test_diagrams.py fails when a committed SVG is not what its .dot renders to.
diagrams:
	for f in docs/diagrams/*.dot; do dot -Tsvg "$$f" -o "$${f%.dot}.svg" || exit 1; done

dist: $(DIST_BIN)

$(DIST_BIN): $(VENV)/.installed-dist packaging/photoslot.spec packaging/rthook_photoslot.py $(shell git ls-files photoslot 2>/dev/null)
	$(BIN)/python -m PyInstaller --noconfirm --log-level WARN --distpath dist --workpath build/pyinstaller packaging/photoslot.spec
	$(DIST_BIN) --version

clean:
	rm -rf $(VENV) build dist *.egg-info
