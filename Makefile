# Two commands for a fresh machine: `make demo` and `make test`. Everything else is a building block.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export WANDB_MODE := offline
export TOKENIZERS_PARALLELISM := false

.PHONY: setup system-deps demo test lint bench clean

setup: system-deps $(STAMP)

# System FFmpeg is needed by torchcodec (torchaudio's decoder); espeak-ng gives the demo real speech.
system-deps:
	@if ! command -v ffmpeg >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "[setup] installing system FFmpeg (apt)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ffmpeg espeak-ng >/dev/null; \
	  else \
	    echo "[setup] FFmpeg is missing. Install it with your package manager, e.g. 'sudo apt-get install ffmpeg'" \
	         "(Debian/Ubuntu) or 'conda install -c conda-forge ffmpeg', then re-run make." >&2; exit 1; \
	  fi; \
	fi

# Re-installs only when pyproject.toml changes; pip (not uv/poetry) so the local wheel store is used. The DeepSpeed
# CPU op is compiled here once (~2 min on 2 cores) instead of inside the first ZeRO run or test.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -U pip
	$(PY) -m pip install -q -e '.[test]'
	$(PY) tools/prebuild_deepspeed_ops.py
	@touch $(STAMP)

# The whole workflow on the CPU: train the tiny demo model (generates data/demo on first use), answer the
# validation split and the nine synthetic MER-UniBench sets, and score both. --demo-wheel: the bundled wheel
# is used only when no official emotion_wheel/ is found (the output then says so).
demo: setup
	$(VENV)/bin/accelerate launch --num_processes 1 train.py
	$(PY) infer.py --ckpt checkpoints/demo --split val --out-dir results/demo/val
	$(PY) evaluate.py run --results-dir results/demo/val --demo-wheel
	$(PY) infer.py --ckpt checkpoints/demo --split test --out-dir results/demo/test
	$(PY) evaluate.py run --results-dir results/demo/test --extractor parser --demo-wheel

# Style first (seconds): ruff's formatter and linter, line length 120 (pyproject.toml [tool.ruff]).
lint: setup
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .

# One pytest-xdist worker per core (at most 4), one test file per worker: a file's module fixtures (its shared
# training runs) are built once, and the subprocess trainings, which use one thread each, no longer leave a core
# idle. `make test TEST_WORKERS=0` runs everything in one process (the order of a plain `pytest`).
TEST_WORKERS ?= auto
test: lint
	$(PY) -m pytest -q -n $(TEST_WORKERS) --maxprocesses 4 --dist loadfile

bench: setup
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) data/demo checkpoints/demo results/demo
