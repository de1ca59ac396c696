# Two commands do all the set-up on a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The exact versions the suite passed with (scripts/freeze-constraints.py writes it);
# `make test-latest` empties it to try the newest versions pyproject allows.
CONSTRAINTS := constraints.txt
PIN := $(if $(CONSTRAINTS),-c $(CONSTRAINTS))

.PHONY: demo test test-min-python test-latest lint setup lce-env clean

# torch==2.13.0 first: on these machines it is a local CPU build; an unpinned torch
# would pull a multi-GB CUDA build (see README, "Install by hand").
$(STAMP): pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(PIN) torch==2.13.0
	$(BIN)/python -m pip install -q $(PIN) -e '.[dev]'
	# nncf compiles its CPU extension on first use (~45 s) under a 60 s timeout, which a busy
	# machine or two test workers compiling at once can exceed: build it once here, untimed.
	NNCF_EXTENSION_LOAD_TIMEOUT=0 $(BIN)/python -c "from nncf.torch.quantization.extensions \
	    import QuantizedFunctionsCPULoader as L; L.load()"
	touch $(STAMP)

setup: $(STAMP)

# Larq Compute Engine's interpreter (the `lce` runtime, tests/lowbit/test_lce.py) in an
# environment of its own: the package imports TensorFlow (1.5 GB; ~75 s to install
# uncached), which stays out of edgekit's extras. Wheels exist for Python 3.10-3.12 only.
LCE_VENV := .venv-lce
LCE_STAMP := $(LCE_VENV)/.installed
# constraints-lce.txt: its tested versions, apart from constraints.txt (TensorFlow 2.16 needs
# numpy<2, edgekit's environment has numpy 2); test-latest keeps them too.
$(LCE_STAMP): constraints-lce.txt
	$(PYTHON) -m venv $(LCE_VENV)
	$(LCE_VENV)/bin/python -m pip install -q -c constraints-lce.txt larq-compute-engine==0.16.0 \
	    tensorflow-cpu==2.16.2
	touch $(LCE_STAMP)

lce-env: $(LCE_STAMP)

demo: $(STAMP)
	$(BIN)/edgekit compress --target jetson

# A skip not for missing hardware fails the run (tests/skip_policy.py). The LCE tests need
# .venv-lce (tests/lowbit/test_lce.py skips without it only outside CI).
test: $(STAMP) $(LCE_STAMP)
	bash scripts/setup-system.sh
	$(BIN)/ruff check edgekit tests benchmarks
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -n 2 --dist loadgroup --durations=15
	$(MAKE) test-min-python

# Python 3.10, the declared minimum (JetPack 6's Python), runs the tests of the board side
# (device profiles, power samplers, timing: numpy, onnxruntime and LiteRT, no torch) in about
# a minute. The whole suite does not run there: torch's 3.10 wheels on the registry are the
# multi-GB CUDA build, and two full runs would double CI's ~20 minutes.
PYTHON_MIN ?= $(shell for p in python3.10 $$HOME/.pyenv/versions/3.10*/bin/python3.10; do \
	$$p -c 'import sys; assert sys.version_info[:2] == (3, 10)' 2>/dev/null && \
	{ echo $$p; break; }; done)
MIN_VENV := .venv-py310
MIN_TESTS := tests/devices tests/core/test_threads.py tests/core/test_skip_policy.py \
	tests/bench/test_progress.py tests/bench/test_timing.py

$(MIN_VENV)/.installed: pyproject.toml
	@test -n "$(PYTHON_MIN)" || { echo "no Python 3.10 found: set PYTHON_MIN=/path/to/python3.10"; exit 1; }
	$(PYTHON_MIN) -m venv $(MIN_VENV)
	$(MIN_VENV)/bin/python -m pip install -q -e '.[ort,litert]' 'pytest>=8,<9.2' \
	    pytest-xdist hypothesis
	touch $@

test-min-python: $(MIN_VENV)/.installed
	$(MIN_VENV)/bin/python -m pytest -p no:cacheprovider -q $(MIN_TESTS)

# The newest versions pyproject allows, in a fresh venv of their own (run it on a schedule:
# a breaking release shows here before a user meets it); torch stays the pinned CPU build.
test-latest:
	rm -rf .venv-latest
	$(MAKE) test VENV=.venv-latest CONSTRAINTS=

lint: $(STAMP)
	$(BIN)/ruff check edgekit tests benchmarks
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) $(MIN_VENV) $(LCE_VENV) .venv-latest runs .pytest_cache
