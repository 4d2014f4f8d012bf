# The lab book's two commands:  `make book`  and  `make test`.  Both set everything up from nothing.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NOTEBOOKS := $(shell find book -name '*.ipynb' -not -path '*/.ipynb_checkpoints/*' -not -path '*/_build/*' | sort)
# lab masters: solutions + tests, so nbval checks every solution passes its own tests
LAB_MASTERS := $(shell find labs -maxdepth 2 -name '*.ipynb' | sort)
# make test runs everything at CI scale (tiny sizes, stable outputs); make book at the detected scale.
# TQDM_DISABLE: progress bars are for people at a keyboard; in a built page tqdm.auto widgets would
# need JavaScript from a CDN, which the offline site must not load.
TEST_ENV := CI=true LAB_SCALE=ci PYTHONHASHSEED=0 MPLBACKEND=agg TQDM_DISABLE=1

.PHONY: help install book test lint unit nbval labs labs-check site site-test browser-deps lab grade lock clean

help:
	@echo "make book   - install (into $(VENV)), execute every chapter, build the site into _build/html"
	@echo "make test   - install, then lint, unit tests, nbval over every notebook, lab grader checks,"
	@echo "              the site build (warnings are errors) and the browser test of the site"
	@echo "make labs   - build student notebooks and autograder bundles into labs/*/dist"
	@echo "make lab    - open JupyterLab"
	@echo "make grade LAB=labs/NN-topic SUBMISSIONS=folder [OUT=gradebook.csv] - grade a folder of submissions"

$(STAMP): requirements.txt requirements-nodeps.txt constraints.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade "pip>=24" 2>&1 | grep -v "^WARNING: Location" || true
	set -o pipefail; $(BIN)/pip install -q -r requirements.txt -c constraints.txt 2>&1 | grep -v "^WARNING: Location" ; test $${PIPESTATUS[0]} -eq 0
	set -o pipefail; $(BIN)/pip install -q --no-deps -r requirements-nodeps.txt 2>&1 | grep -v "^WARNING: Location" ; test $${PIPESTATUS[0]} -eq 0
	set -o pipefail; $(BIN)/pip install -q --no-deps -e . 2>&1 | grep -v "^WARNING: Location" ; test $${PIPESTATUS[0]} -eq 0
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (lab book)" > /dev/null
	touch $(STAMP)

install: $(STAMP)

book: $(STAMP)
	TQDM_DISABLE=1 $(BIN)/jupyter-book build . --keep-going
	@echo
	@echo "The book is built: open $(CURDIR)/_build/html/index.html"

lint: $(STAMP)
	$(BIN)/ruff check .

unit: $(STAMP)
	$(TEST_ENV) $(BIN)/python -m pytest -q -p no:cacheprovider --timeout=600 -m "not browser" \
		--ignore=tests/test_labs.py tests

nbval: $(STAMP)
	$(TEST_ENV) $(BIN)/python -m pytest -q -p no:cacheprovider --nbval-lax --nbval-current-env \
		--nbval-sanitize-with tests/nbval_sanitize.cfg --timeout=900 $(NOTEBOOKS) $(LAB_MASTERS)

labs: $(STAMP)
	$(BIN)/python -m lab_utils.grading build labs

labs-check: $(STAMP)
	$(TEST_ENV) $(BIN)/python -m pytest -q -p no:cacheprovider --timeout=1200 tests/test_labs.py

site: $(STAMP)
	$(TEST_ENV) $(BIN)/jupyter-book build . -W --keep-going

browser-deps:
	@test -x /usr/bin/chromium || { echo "installing Debian's chromium for the browser test"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium > /dev/null; }

site-test: $(STAMP) browser-deps
	$(TEST_ENV) $(BIN)/python -m pytest -q -p no:cacheprovider -m browser tests

test: $(STAMP)
	$(MAKE) lint
	$(MAKE) unit
	$(MAKE) nbval
	$(MAKE) labs-check
	$(MAKE) site
	$(MAKE) site-test
	@echo "make test: all checks passed"

lab: $(STAMP)
	$(BIN)/jupyter lab

grade: $(STAMP)
	@test -n "$(LAB)" -a -n "$(SUBMISSIONS)" || { echo "usage: make grade LAB=labs/01-memory-anatomy SUBMISSIONS=path/to/folder [OUT=gradebook.csv]"; exit 2; }
	$(BIN)/python -m lab_utils.grading grade $(LAB) $(SUBMISSIONS) --out $(or $(OUT),gradebook.csv)

lock: $(STAMP)
	{ echo "# Full resolved set from \`pip freeze\` on the CI machine (Linux x86_64, Python 3.11)."; \
	  echo "# Regenerate with \`make lock\` after changing requirements.txt."; \
	  $(BIN)/pip freeze --exclude-editable | grep -v "^lab-utils"; } > constraints.txt

# GPU check targets (make gpu-check, make gpu-wheels) live in their own file
include mk/gpu.mk

clean:
	rm -rf _build labs/*/dist .pytest_cache
