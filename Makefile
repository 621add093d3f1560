# The two commands: `make run` (set up and start the appliance) and `make test` (set up and test).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: run test setup build clean

$(STAMP): pyproject.toml setup.py $(wildcard _ext/*.pyx) $(wildcard _ext/*.pxd)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip setuptools wheel
	$(PY) -m pip install --quiet -e '.[test]'
	$(PY) -c "import _ext._otlp"  # the compiled decoder must have built
	touch $(STAMP)

setup: $(STAMP)

# Rebuild the Cython extensions in place after editing a .pyx.
build: setup
	$(PY) setup.py build_ext --inplace --quiet

run: setup
	$(VENV)/bin/clew serve --data-dir ./data

test: setup
	CLEW_REQUIRE_EXTENSIONS=1 $(PY) -m pytest -q

clean:
	rm -rf build *.egg-info _ext/*.c _ext/*.so $(VENV)
