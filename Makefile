# Each target bootstraps .venv itself: a fresh machine needs nothing but Python 3.11.
# The CPU build of torch is installed first so that no CUDA wheels are pulled in; on a GPU
# machine, override it: make test TORCH_SPEC="torch==2.13.0" TORCH_PIP_ARGS="--index-url ..."
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
TORCH_SPEC ?= torch==2.13.0
TORCH_PIP_ARGS ?=
PIP_QUIET ?= -q

.PHONY: demo test bench clean-venv

$(PY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.torch: | $(PY)
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install $(PIP_QUIET) $(TORCH_PIP_ARGS) "$(TORCH_SPEC)"
	touch $@

$(VENV)/.installed-%: pyproject.toml $(VENV)/.torch
	$(PIP) install $(PIP_QUIET) -e ".[$*]"
	touch $@

demo: $(VENV)/.installed-examples
	HF_HUB_OFFLINE=1 $(PY) examples/demo.py

test: $(VENV)/.installed-dev
	HF_HUB_OFFLINE=1 $(PY) -m pytest $(PYTEST_ARGS)

bench: $(VENV)/.installed-bench
	HF_HUB_OFFLINE=1 $(PY) benchmarks/rerank_speed.py

clean-venv:
	rm -rf $(VENV)
