# Two entry points for a fresh machine (Python >= 3.11):
#   make book   create .venv from the pinned versions, execute every chapter, render _build/html
#   make test   ruff (lint and import order) + unit tests + every notebook under pytest --nbval + a strict (-W) book build
#               + the rendered pages checked in headless Chromium
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
	$(BIN)/python -m mmgan.book.table_chapters  # the chapters of Tables 2-8 from their one template
	$(BIN)/jupyter-book build .
	@echo "Book written to _build/html/index.html"

# The strict build renders the outputs stored in the notebooks, which the nbval step has just
# re-executed and compared, instead of executing every chapter a second time.
test: $(VENV)/installed.stamp
	$(BIN)/ruff check .
	# two worker processes (CI's two cores), each test file or notebook whole on one worker (nbval replays a
	# notebook's cells in order in one kernel), each on one thread: two workers of two threads on two cores made
	# every small tensor operation wait for a descheduled thread (a chapter's cell 8x slower)
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/python -m pytest -n 2 --dist loadfile --nbval \
	    --nbval-sanitize-with tests/nbval_sanitize.cfg --ignore=tests/browser --durations=25 tests notebooks
	mkdir -p _build
	# (local extension paths are resolved from the config file's folder, hence the absolute path)
	sed -e 's/execute_notebooks: cache/execute_notebooks: "off"/' -e 's|: book/_ext|: $(CURDIR)/book/_ext|' \
	    _config.yml > _build/config-no-execution.yml
	$(BIN)/jupyter-book build . -W -n --keep-going --config _build/config-no-execution.yml
	$(BIN)/python -m pytest tests/browser --book-html _build/html --screenshots _build/screenshots

clean:
	rm -rf _build
