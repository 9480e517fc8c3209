# The kit's two commands (see README.md):
#   make reproduce   install everything, then run the whole notebook pipeline (smoke profile)
#   make test        install everything, then run the linter and the whole test suite (what CI runs)
#   make test-fast   the same without the slow tests (main job, nbval, browser): for development
# Both create .venv/ on first use. Variables you may set:
#   PYTHON=python3.11        interpreter for the virtual environment
#   TORCH=torch==2.13.0      the torch requirement installed first. 2.13.0 is pinned because
#                            its CPU build is what CPU-only machines here have on disk; a bare
#                            "torch" could pull a multi-GB CUDA build onto a CPU machine.
#   TORCH_INDEX=https://download.pytorch.org/whl/cpu   where to get torch (e.g. the CPU index)
#   PROFILE=smoke|paper      profile of `make reproduce`;  ARGS=...  extra arguments

# OpenMP is left at its defaults. On a machine shared with other CPU-heavy jobs, exporting
# OMP_WAIT_POLICY=PASSIVE stops torch's idle threads spinning (which made small tensors 10-35x
# slower under such load here); on an idle 2-core machine it slows smoke training 1.75x
# (0.95 vs 0.54 s/iteration, measured), so it is not the default.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH ?= torch==2.13.0
TORCH_INDEX ?=
PROFILE ?= smoke
ARGS ?=
STAMP := $(VENV)/.irnlib-installed

.PHONY: install reproduce lint test test-fast lab bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (irnlib)" >/dev/null
	touch $@

reproduce: $(STAMP)
	$(BIN)/python -m irnlib reproduce --profile $(PROFILE) $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The suite runs in one process per CPU (pytest-xdist), each with one OpenMP thread
# (tests/conftest.py); a test file stays in one process, so module fixtures are made once, and
# the files keep conftest's order (longest first) instead of xdist's reordering by test count.
PYTEST := $(BIN)/python -m pytest -n auto --dist loadfile --no-loadscope-reorder

test: lint
	$(PYTEST) $(ARGS)

test-fast: lint
	$(PYTEST) -m 'not slow' $(ARGS)

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/

bench: $(STAMP)
	for script in benchmarks/*.py; do $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) results/runs results/cache
