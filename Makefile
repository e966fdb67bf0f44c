# Two entry points for a fresh machine (Python >= 3.11):
#   make book   create .venv from the pinned versions, execute every chapter, render _build/html
#   make test   unit tests + every notebook under pytest --nbval + a strict (-W) book build
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: book test clean

$(VENV)/installed.stamp: requirements-lock.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --requirement requirements-lock.txt
	$(BIN)/python -m pip install --quiet --no-deps --editable .
	touch $@

book: $(VENV)/installed.stamp
	$(BIN)/jupyter-book build .
	@echo "Book written to _build/html/index.html"

test: $(VENV)/installed.stamp
	$(BIN)/python -m pytest --nbval --nbval-sanitize-with tests/nbval_sanitize.cfg tests notebooks
	$(BIN)/jupyter-book build . -W -n --keep-going

clean:
	rm -rf _build
