# Two commands do all the set-up on a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint setup lce-env clean

# torch==2.13.0 first: on these machines it is a local CPU build; an unpinned torch
# would pull a multi-GB CUDA build (see README, "Install by hand").
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev]'
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
$(LCE_STAMP):
	$(PYTHON) -m venv $(LCE_VENV)
	$(LCE_VENV)/bin/python -m pip install -q larq-compute-engine==0.16.0 tensorflow-cpu==2.16.2
	touch $(LCE_STAMP)

lce-env: $(LCE_STAMP)

demo: $(STAMP)
	$(BIN)/edgekit compress --target jetson

test: $(STAMP) $(LCE_STAMP)
	bash scripts/setup-system.sh
	$(BIN)/ruff check edgekit tests benchmarks
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -n 2 --dist loadgroup --durations=15

lint: $(STAMP)
	$(BIN)/ruff check edgekit tests benchmarks
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) $(LCE_VENV) runs .pytest_cache
