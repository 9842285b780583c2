# The two setup commands of the README. Each creates .venv (Python 3.11) and installs what it needs.
PY ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: quickstart test install install-test

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# onednn-devel: oneDNN's C++ headers (200 KB) for ppipe's CPU convolution operator, which links Paddle's own
# oneDNN library; --no-deps skips the wheel's copy of the oneDNN/SYCL runtime (~1 GB), which is not used.
install: $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	$(BIN)/python -m pip install -q --no-deps onednn-devel==2026.1.0

# paddleclas 2.6.0 is only a test oracle. It pins numpy==1.24.4 and opencv<=4.6, which would break
# ray.train (it needs a numpy-2 pandas), so it goes in without its pins; its real needs are in the
# `test` extra.
install-test: $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test]'
	$(BIN)/python -m pip install -q --no-deps onednn-devel==2026.1.0
	$(BIN)/python -m pip install -q --no-deps paddleclas==2.6.0

# The main job: the whole pipeline (prepare -> train on Ray -> evaluate -> export -> publish) on the
# embedded digits data, as a Prefect flow.
quickstart: install
	$(BIN)/ppipe pipeline

test: install-test
	$(BIN)/python -m pytest $(PYTEST_ARGS)
