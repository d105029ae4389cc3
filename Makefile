# catdb: the two commands.  `make demo` runs the main job on bundled real data,
# `make test` runs the tests.  Each installs what it needs on a fresh Debian machine.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
APT_PACKAGES := postgresql-15 postgresql-15-q3c source-extractor scamp swarp stilts starlink-ecsv-java chromium chromium-driver
# binaries that prove each package is present (apt-get runs only when one is missing)
NEED_BINS := /usr/lib/postgresql/15/bin/initdb /usr/share/postgresql/15/extension/q3c.control \
             /usr/bin/source-extractor /usr/bin/scamp /usr/bin/SWarp /usr/bin/stilts /usr/share/java/starlink-ecsv.jar \
             /usr/bin/chromium /usr/bin/chromedriver

.PHONY: test demo system venv clean-demo bench docs help

help:
	@echo "make test   - install what is missing, then run the test suite"
	@echo "make demo   - install what is missing, then run the main job on the bundled Lowell night"
	@echo "make bench  - speed figures (ratios against baselines measured in the same run)"
	@echo "make docs   - regenerate docs/cli.md from the commands' --help (tests/test_docs.py checks it)"

system:
	@missing=0; for f in $(NEED_BINS); do [ -e $$f ] || missing=1; done; \
	if [ $$missing = 1 ]; then \
	  echo "installing system packages: $(APT_PACKAGES)"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $(APT_PACKAGES) >/dev/null; \
	fi

$(VENV)/.installed: pyproject.toml
	@[ -x $(PY) ] || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[all,pip]"
	@touch $@

venv: $(VENV)/.installed

test: system venv
	$(PY) -m pytest -q

# the demo runs in its own database (catdb_demo) of the embedded server, never in CATDB_URL's
demo: system venv
	env -u CATDB_URL -u CATDB_DATABASE $(VENV)/bin/catdb run pipelines/lowell42-demo.toml

bench: system venv
	$(PY) bench/run_all.py

docs: venv
	$(VENV)/bin/cog -r docs/cli.md
