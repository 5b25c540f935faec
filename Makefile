# Two commands do everything on a fresh machine:  `make run`  and  `make test`.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.setup-done
PARAMS ?= params/autoif/quickstart.yaml

.PHONY: setup run test test-all bench gpu-check lab clean

setup: $(STAMP)

# torch first and alone: the CPU build is served here, and any other spec pulls GBs of CUDA.
$(STAMP): pyproject.toml autoif_lib/bootstrap.py
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (Python 3.11)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	$(PY) -m autoif_lib.bootstrap
	touch $(STAMP)

run: setup  ## the quickstart pipeline on the embedded model, CPU
	$(VENV)/bin/autoif run $(PARAMS)

test: setup  ## fast, offline tests + notebook smoke runs (slow ones excluded)
	$(VENV)/bin/pytest -q -m "not slow" -p no:cacheprovider

test-all: setup
	$(VENV)/bin/pytest -q -p no:cacheprovider

bench: setup  ## writes outputs/bench/*.json
	$(PY) bench/bench_generation.py --out outputs/bench/generation.json
	$(PY) bench/bench_sandbox.py --out outputs/bench/sandbox.json

gpu-check: setup  ## CUDA paths on one GPU (vLLM, SFT/DPO/online-DPO steps, accelerate); skips without a GPU
	$(PY) bench/gpu_check.py --out outputs/bench/gpu_check.json

lab: setup
	$(VENV)/bin/jupyter lab notebooks/

clean:
	rm -rf $(VENV) *.egg-info
