# Each target builds .venv on first use, so a fresh clone needs nothing but python3.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
MATRIX_STAMP := $(VENV)/.installed-matrix

.PHONY: demo test trial lint matrix bench clean plugins browser

, := ,

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test,lint,plot,progress,browser,tls]"
	$(MAKE) --no-print-directory plugins
	touch $(STAMP)

# twistd caches what its plugins are in dropin.cache; scanning once after an install
# writes it afresh, as Twisted's documentation advises.
plugins:
	$(BIN)/python -c "from twisted.plugin import IPlugin, getPlugins; list(getPlugins(IPlugin))"

# Headless Chromium for the lab's browser tests, from Debian's packages, where this user may
# install them (root, with apt); elsewhere those tests skip, each saying why.
browser:
	@if ! { command -v chromium && command -v chromedriver; } >/dev/null; then \
	    if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	        echo "installing Debian's chromium and chromium-driver for the lab's browser tests"; \
	        apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 || \
	        { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium chromium-driver >/dev/null 2>&1; } || \
	        echo "could not install chromium: the lab's browser tests will skip"; \
	    else \
	        echo "no chromium (as root: apt-get install chromium chromium-driver): the lab's browser tests will skip"; \
	    fi; \
	fi

demo: $(STAMP)
	$(BIN)/poetrynow demo

# Four workers on two cores: most tests wait on subprocesses and sockets, not the CPU.
# Each test has a time limit (pytest-timeout, timeout in pyproject.toml): a hang fails one test.
# First, alone on the machine, the counts that the rest of the suite's load could change (the
# cold burst, tests/conftest.py ALONE_MODULES); then everything else, four at a time.
test: $(STAMP) browser
	$(BIN)/python -m pytest -q -m alone
	$(BIN)/python -m pytest -q -n 4 -m "not alone"

# The same suite under Twisted's own runner (Part 15): every test is trial-style. Two
# workers, one a core: half the time of one.
# Each test has a time limit here too (tests/time_limit.py: trial's own bounds only a Deferred).
# TRIAL_TESTS names what to run (default: every test module).
TRIAL_TESTS ?= tests
trial: $(STAMP)
	$(BIN)/python -m twisted.trial -j 2 $(TRIAL_TESTS)

# ruff's lint and format check over the whole tree, and mypy over src/ (settings in pyproject.toml).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# nox and uv only for the matrix: the other targets never need them.
$(MATRIX_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[matrix]"
	touch $(MATRIX_STAMP)

# Every cell of noxfile.py: each Python against Twisted's floor and its newest release, a
# bare install, and localhost as ::1 first. NOX_ARGS picks some: make matrix NOX_ARGS="-s bare".
matrix: $(MATRIX_STAMP)
	$(BIN)/nox $(NOX_ARGS)

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[speed]"
	$(BIN)/python benchmarks/seed_table.py
	$(BIN)/python benchmarks/servers.py $(if $(wildcard ../shared/poetry/ecstasy.txt),--poem ../shared/poetry/science.txt$(,)../shared/poetry/ecstasy.txt)
	$(BIN)/python benchmarks/fanout.py --clients 10000 --command
	$(BIN)/python benchmarks/big_poem.py

clean:
	rm -rf $(VENV) .nox build _trial_temp src/*.egg-info src/twisted/plugins/dropin.cache
