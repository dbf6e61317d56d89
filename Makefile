# The two README commands: `make run` and `make test`; `make bench` for benchmarks.
# All share one virtualenv in .venv. Debian packages are installed when missing and we are root.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
CONFIG ?= config/gateway.dev.toml

DEB_BUILD := build-essential python3-dev
DEB_RUN   := espeak-ng
DEB_TEST  := prometheus sip-tester redis-server openssl

.PHONY: run test test-fast bench deps-build deps-test clean lint

# Install the Debian packages in $(1) that are missing (only when running as root).
define apt_install
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = "0" ]; then \
	    echo "apt-get install$$missing"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing) >/dev/null \
	      || echo "warning: could not install$$missing"; \
	  else echo "warning: missing Debian packages:$$missing (run as root to install)"; fi; \
	fi
endef

deps-build:
	$(call apt_install,$(DEB_BUILD) $(DEB_RUN))

deps-test:
	$(call apt_install,$(DEB_TEST))

$(VENV)/.installed: pyproject.toml setup.py $(wildcard ext/*.pyx ext/*.pxd)
	$(MAKE) deps-build
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel "Cython>=3.0"
	$(PY) -m pip install -q -e '.[test,bench]'
	$(PY) setup.py -q build_ext --inplace
	touch $@

run: $(VENV)/.installed
	$(PY) -m gateway run -c $(CONFIG)

test: $(VENV)/.installed deps-test
	$(PY) -m pytest -q -p no:randomly tests
	GATEWAY_NO_EXTENSIONS=1 $(PY) -m pytest -q tests/codec tests/proto tests/io

test-fast: $(VENV)/.installed
	$(PY) -m pytest -q -x -m "not slow" tests

bench: $(VENV)/.installed
	$(PY) bench/bench_codec.py
	$(PY) bench/bench_link.py
	$(PY) bench/bench_e2e.py

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check gateway tests bench

clean:
	rm -rf build var gateway/codec/*.so gateway/codec/*.c ext/*.c
