# lifelong-monodepth: two commands on a fresh machine — `make run` and `make test`.
# Every install goes through constraints.txt so nothing can upgrade torch (a newer torch drags
# in GBs of CUDA wheels). The stamp file makes a second call skip the install. --no-compile: Python
# byte-compiles only the modules a run imports, when it imports them (≈ 26 s less install on 2 cores).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.stamp-install
export HF_HUB_OFFLINE ?= 1
export PYTHONUNBUFFERED := 1
# CPU training allocates and frees the same large activation buffers at every step; glibc's default
# hands them back to the kernel and faults them in again, zeroed (≈ 8,700 page faults and 10–25 ms of
# system time a step at K's size). Keeping blocks under 256 MiB in the heap, and up to 1 GiB of free
# heap before trimming: ≈ 800 faults, ≈ 3 ms (docs/benchmarks.md). Ignored by other C libraries;
# `make run MALLOC_TUNING=` runs with the C library's defaults, a GLIBC_TUNABLES of yours wins.
MALLOC_TUNING ?= glibc.malloc.mmap_threshold=268435456:glibc.malloc.trim_threshold=1073741824
export GLIBC_TUNABLES ?= $(MALLOC_TUNING)

.PHONY: help install run data test lint format bench eval sweep report predict export clean

help:  ## list targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q --no-compile -c constraints.txt torch==2.13.0
	$(PY) -m pip install -q --no-compile -c constraints.txt -e '.[dev,export]'
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install the package (idempotent)

data: $(STAMP)  ## generate the embedded synthetic benchmark (skipped when present)
	$(PY) -m lifelong_monodepth.data.synthetic

run: $(STAMP)  ## set up and run the main job (order NKS on the synthetic benchmark)
	$(PY) run.py $(ARGS)

eval: $(STAMP)  ## evaluate a checkpoint: make eval CKPT=outputs/.../checkpoints/NKS.ckpt
	$(PY) run.py mode=test ckpt=$(CKPT) $(ARGS)

SWEEP ?= all_orders
sweep: $(STAMP)  ## a sweep preset: make sweep SWEEP=[all_orders,seeds] ARGS='hydra/launcher=joblib'
	$(PY) run.py -m 'sweep=$(SWEEP)' $(ARGS)

report: $(STAMP)  ## paper table of a sweep: make report DIR=outputs/multiruns/<date> (default: latest)
	$(PY) -m lifelong_monodepth.report $(or $(DIR),$(lastword $(sort $(wildcard outputs/multiruns/*))))
predict: $(STAMP)  ## depth for your images: make predict CKPT=.../NKS.ckpt INPUT=photos/ [OUTPUT=predictions]
	$(PY) -m lifelong_monodepth.predict ckpt=$(CKPT) input=$(INPUT) output=$(or $(OUTPUT),predictions) $(ARGS)

export: $(STAMP)  ## ONNX/TorchScript: make export CKPT=.../NKS.ckpt [FORMAT=onnx|torchscript]
	$(PY) -m lifelong_monodepth.export ckpt=$(CKPT) format=$(or $(FORMAT),onnx) $(ARGS)

test: $(STAMP)  ## set up and run the test suite
	$(PY) -m pytest -q $(ARGS)

lint: $(STAMP)  ## ruff
	$(VENV)/bin/ruff check src tests run.py benchmarks

format: $(STAMP)  ## ruff format + fixes
	$(VENV)/bin/ruff format src tests run.py benchmarks
	$(VENV)/bin/ruff check --fix src tests run.py benchmarks

bench: $(STAMP)  ## speed and memory benchmarks (prints figures and ratios)
	$(PY) benchmarks/run_benchmarks.py $(ARGS)

clean:  ## remove generated data, outputs and caches (keeps .venv)
	rm -rf outputs multirun wandb data/synthetic data_index/synthetic_* .pytest_cache .ruff_cache
