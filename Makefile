# The lab book's two commands:  `make book`  and  `make test`.  Both set everything up from nothing.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NOTEBOOKS := $(shell find book -name '*.ipynb' -not -path '*/.ipynb_checkpoints/*' -not -path '*/_build/*' | sort)
# make test runs everything at CI scale (tiny sizes, stable outputs); make book at the detected scale.
# TQDM_DISABLE: progress bars are for people at a keyboard; in a built page tqdm.auto widgets would
# need JavaScript from a CDN, which the offline site must not load.
TEST_ENV := CI=true LAB_SCALE=ci PYTHONHASHSEED=0 TQDM_DISABLE=1
# Plain pytest (unit tests, lab proofs, browser test) draws off-screen: agg.
UNIT_ENV := $(TEST_ENV) MPLBACKEND=agg
# Jupyter kernels (nbval, the site build) must keep ipykernel's inline backend, which puts each figure
# into its cell's outputs as image/png: no MPLBACKEND, whatever the caller's environment holds.
KERNEL_ENV := env -u MPLBACKEND $(TEST_ENV)
# One jupyter-cache per scale profile (scripts/book_config.py): jupyter-cache keys an execution by the
# code alone, so a CI-scale execution must never be served as the book. nbval records its executions
# of book/ into the ci one (tests/nbval_record.py), and the site build of make test reads them from
# there: each notebook is executed once per test run.
CACHE_DIR := _build/.jupyter_cache
# the scale _build/html was built at, for the browser test (it compares figures with that cache)
HTML_SCALE := _build/config/html_scale

.PHONY: help install book test lint unit nbval labs labs-check grading-deps site site-test browser-deps lab grade lock clean

help:
	@echo "make book   - install (into $(VENV)), execute every chapter at the detected scale (LAB_SCALE"
	@echo "              overrides; one jupyter-cache per scale), build the site into _build/html"
	@echo "make test   - install, then lint, unit tests, nbval over every notebook, lab grader checks,"
	@echo "              the site build (warnings are errors; chapters come from nbval's executions)"
	@echo "              and the browser test of the site; ends with a table of each stage's time"
	@echo "make labs   - build student notebooks and autograder bundles into labs/*/dist"
	@echo "make lab    - open JupyterLab"
	@echo "make grade LAB=labs/NN-topic SUBMISSIONS=folder [OUT=gradebook.csv] - grade a folder of submissions"
	@echo "              (each in a bubblewrap sandbox, in parallel; also writes OUT's .report.md and .scores.png)"

$(STAMP): requirements.txt requirements-nodeps.txt constraints.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade "pip>=24" 2>&1 | grep -v "^WARNING: Location" || true
	set -o pipefail; $(BIN)/pip install -q -r requirements.txt -c constraints.txt 2>&1 | grep -v "^WARNING: Location" ; test $${PIPESTATUS[0]} -eq 0
	set -o pipefail; $(BIN)/pip install -q --no-deps -r requirements-nodeps.txt 2>&1 | grep -v "^WARNING: Location" ; test $${PIPESTATUS[0]} -eq 0
	set -o pipefail; $(BIN)/pip install -q --no-deps -e . 2>&1 | grep -v "^WARNING: Location" ; test $${PIPESTATUS[0]} -eq 0
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (lab book)" > /dev/null
	touch $(STAMP)

install: $(STAMP)

# The scale lab_utils detects (LAB_SCALE overrides), its own cache, a fresh Sphinx environment
# (--all: pages of another scale's build must not survive; cached chapters are only re-rendered).
book: $(STAMP)
	@rm -f $(HTML_SCALE); scale=$$($(BIN)/python -c "from lab_utils.device import detect_scale; print(detect_scale().name)") && \
	cfg=$$($(BIN)/python scripts/book_config.py $$scale) && \
	echo "make book: scale profile '$$scale', jupyter-cache $(CACHE_DIR)/$$scale, config $$cfg" && \
	env -u MPLBACKEND LAB_SCALE=$$scale TQDM_DISABLE=1 $(BIN)/jupyter-book build . --config $$cfg --all --keep-going && \
	echo $$scale > $(HTML_SCALE)
	@echo
	@echo "The book is built: open $(CURDIR)/_build/html/index.html"

lint: $(STAMP)
	$(BIN)/ruff check .

unit: $(STAMP) grading-deps
	$(UNIT_ENV) $(BIN)/python -m pytest -q -p no:cacheprovider --timeout=600 -m "not browser" \
		--ignore=tests/test_labs.py tests

# nbval checks every notebook; tests/nbval_record.py writes each chapter it ran cleanly, outputs and
# figures included, into the ci jupyter-cache, so the site build that follows executes nothing.
nbval: $(STAMP)
	$(KERNEL_ENV) $(BIN)/python -m pytest -q -p no:cacheprovider -p tests.nbval_record \
		--nbval-record-cache $(CACHE_DIR)/ci --nbval-record-under book \
		--nbval-lax --nbval-current-env \
		--nbval-sanitize-with tests/nbval_sanitize.cfg --timeout=900 $(NOTEBOOKS)

labs: $(STAMP)
	$(BIN)/python -m lab_utils.grading build labs

# Submissions are graded in a bubblewrap sandbox (lab_utils.grading.sandbox), installed like Chromium.
grading-deps:
	@test -x /usr/bin/bwrap || { echo "installing Debian's bubblewrap for the grading sandbox"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap > /dev/null; }

labs-check: $(STAMP) grading-deps
	$(UNIT_ENV) $(BIN)/python -m pytest -q -p no:cacheprovider --timeout=1200 tests/test_labs.py

# The site at CI scale from the ci cache; chapters nbval did not record are executed here. Under
# make test (SITE_FROM_NBVAL=1) executing any chapter is an error: nbval has just run them all.
site: $(STAMP)
	@mkdir -p _build; rm -f $(HTML_SCALE)
	set -o pipefail; cfg=$$($(BIN)/python scripts/book_config.py ci) && \
	$(KERNEL_ENV) $(BIN)/jupyter-book build . --config $$cfg --all -W --keep-going 2>&1 | tee _build/site.log && \
	echo ci > $(HTML_SCALE)
	@cached=$$(grep -c "Using cached notebook" _build/site.log); executed=$$(grep -c "Executing notebook" _build/site.log); \
	echo "make site: $$cached chapter(s) from $(CACHE_DIR)/ci, $$executed executed by the build"; \
	if [ -n "$(SITE_FROM_NBVAL)" ] && [ "$$executed" != 0 ]; then \
		echo "make site: nbval ran just before, so every chapter should have come from its recorded executions"; \
		echo "  (see 'NOT recorded' in the nbval log, and tests/nbval_record.py)"; exit 1; fi

browser-deps:
	@test -x /usr/bin/chromium || { echo "installing Debian's chromium for the browser test"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium > /dev/null; }

site-test: $(STAMP) browser-deps
	$(UNIT_ENV) $(BIN)/python -m pytest -q -p no:cacheprovider -m browser tests

# Each stage timed; a table at the end, also when a stage fails (make test then exits non-zero).
test:
	@SITE_FROM_NBVAL=1 bash scripts/timed_stages.sh "$(MAKE)" install lint unit nbval labs-check site site-test

lab: $(STAMP)
	$(BIN)/jupyter lab

grade: $(STAMP) grading-deps
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
