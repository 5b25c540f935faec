"""GPU check (`make gpu-check`): the CUDA paths, end to end on the embedded model, in a few minutes.

On the CUDA GPUs of one node: the vLLM backend generates and judges by likelihood (prompt log-probabilities), a
second engine starts after the first is released (the 11_evaluate pattern), one SFT, one DPO and one online-DPO
step train in process, SFT trains under DeepSpeed ZeRO-3 through the stages' launcher (torchrun, one rank per
GPU) and its saved checkpoint is checked against the weights in memory, and online DPO runs 2 iterations under
the launcher with vLLM sampling on rank 0 (iteration 2: vLLM starts after training and loads the checkpoint just
saved). Prints a pass/fail table and tokens/s of vLLM vs the transformers backend; writes the same as JSON.

Exit codes: 0 all passed, or no GPU at all (CI: "no GPU"); 1 a check failed; 2 `nvidia-smi` lists a GPU that
torch cannot use (a driver too old for torch's CUDA build, or a CPU build of torch).

    python bench/gpu_check.py --out outputs/bench/gpu_check.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PROMPTS = ["Write one sentence about the sea.", "List three colours.", "Say hello in French.",
           "Name a prime number.", "Describe a cat in five words.", "What is 2 + 2?"] * 4
LOWER = "def evaluate(response):\n    return response == response.lower()"


def _throughput(spec):
    from autoif_lib.models import Generator, SamplingParams
    from autoif_lib.throughput import measure_layer

    gen = Generator(spec, cache_path=None, progress=False)
    return gen, measure_layer(gen, PROMPTS, SamplingParams(temperature=0.0, max_new_tokens=64))


def check_vllm(results):
    from autoif_lib.autoif import nli
    from autoif_lib.models import ModelSpec, SamplingParams

    gen, tp = _throughput(ModelSpec(backend="vllm", model="embedded", gpu_memory_utilization=0.3))
    results["tokens_per_s"]["vllm"] = tp["tokens_per_s"]
    judge = nli.LLMJudgeNLI(gen, SamplingParams(temperature=0.0, max_new_tokens=12))
    labels = judge.predict([("Answer in lowercase.", "Write only lowercase letters.")])
    assert judge.mode == "likelihood" and labels[0] in nli.LABELS, (judge.mode, labels)
    gen.close()  # a second engine at the default 0.9 must pass vLLM's free-memory check once the first is gone
    from autoif_lib.models import Generator

    again = Generator(ModelSpec(backend="vllm", model="embedded"), cache_path=None, progress=False)
    assert again.generate(["Say hi."], SamplingParams(temperature=0.0, max_new_tokens=4))[0][0]
    again.close()
    return f"{tp['tokens_per_s']} tok/s; likelihood judge label {labels[0]}; second engine after release ok"


def check_transformers(results):
    from autoif_lib.autoif import nli
    from autoif_lib.models import ModelSpec, SamplingParams

    gen, tp = _throughput(ModelSpec(backend="transformers", model="embedded", device="cuda", batch_size=24))
    results["tokens_per_s"]["transformers"] = tp["tokens_per_s"]
    judge = nli.LLMJudgeNLI(gen, SamplingParams(temperature=0.0, max_new_tokens=12))
    labels = judge.predict([("Answer in lowercase.", "Write only lowercase letters.")])
    assert judge.mode == "likelihood" and labels[0] in nli.LABELS
    return f"{tp['tokens_per_s']} tok/s; likelihood judge label {labels[0]}"


def _job(kind, tmp, rows, **kw):
    from autoif_lib import io
    from autoif_lib.models.backends import resolve_model_path
    from autoif_lib.train import TrainJob

    data = Path(tmp) / f"{kind}.jsonl"
    io.write_jsonl(data, rows)
    return TrainJob(kind=kind, model=resolve_model_path("embedded"), train_file=str(data),
                    output_dir=str(Path(tmp) / kind), seed=0,
                    trl_args={"max_steps": 1, "per_device_train_batch_size": 2, "learning_rate": 1e-6,
                              "bf16": True, "max_length": 128, **kw.pop("trl", {})}, **kw)


def check_train(kind, tmp):
    from autoif_lib import train

    if kind == "sft":
        rows = train.sft_records([{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}] * 2)
        job = _job("sft", tmp, rows)
    elif kind == "dpo":
        rows = [{"prompt": [{"role": "user", "content": "Answer in lowercase"}],
                 "chosen": [{"role": "assistant", "content": "yes"}],
                 "rejected": [{"role": "assistant", "content": "YES"}]}] * 2
        job = _job("dpo", tmp, rows)
    else:
        rows = [{"prompt": [{"role": "user", "content": f"Say something in lowercase {i}"}], "instruction_id": f"i{i}",
                 "verifiers": [LOWER]} for i in range(4)]
        job = _job("online_dpo", tmp, rows, options={
            "iterations": 1, "samples_per_prompt": 4, "max_new_tokens": 16, "temperature": 1.0,
            "sandbox": {"timeout_s": 2.0}, "generation": {"backend": "transformers", "model": "embedded", "device": "cuda"}})
    res = train.run_job(job)
    return f"steps {res['steps']}" + (f", pairs {res['iterations'][0]['pairs']}" if kind == "online_dpo" else "")


def _launch(job, n_gpus: int) -> dict:
    """The stages' launch path: torchrun with one rank per GPU (a single rank still goes through torchrun, so
    DeepSpeed runs as it does on a node)."""
    from autoif_lib import distributed

    job.deepspeed_config = str(ROOT / "params" / "accelerate" / "zero3.json")
    path = job.save(Path(job.output_dir) / "job.json")
    proc = subprocess.run(distributed.launch_command(path, max(1, n_gpus)), env=distributed.launch_env(),
                          capture_output=True, text=True, timeout=420)
    if proc.returncode:
        raise RuntimeError(proc.stderr[-2000:])
    return json.loads((Path(job.output_dir) / "train_result.json").read_text())


def check_zero3_save(tmp, n_gpus):
    """ZeRO-3 SFT saves a checkpoint equal to the sharded weights in memory (verified inside the run), and it
    loads and generates."""
    from autoif_lib.models import Generator, ModelSpec, SamplingParams
    from autoif_lib import train

    rows = train.sft_records([{"messages": [{"role": "user", "content": f"hi {i}"},
                                            {"role": "assistant", "content": f"hello {i}"}]} for i in range(16)])
    job = _job("sft", str(Path(tmp) / "zero3"), rows)
    Path(job.output_dir).mkdir(parents=True, exist_ok=True)
    res = _launch(job, n_gpus)
    assert res["sharded"] and res["weights_verified"] and res["steps"] == 1, res
    gen = Generator(ModelSpec(backend="transformers", model=res["final_model"], device="cuda"), cache_path=None,
                    progress=False)
    assert gen.generate(["Say hi."], SamplingParams(temperature=0.0, max_new_tokens=4))[0][0] is not None
    gen.close()
    return f"{res['world_size']} rank(s), sharded, saved == in memory, reloads and generates"


def check_online_launch(tmp, n_gpus):
    from autoif_lib import train  # noqa: F401

    rows = [{"prompt": [{"role": "user", "content": f"Say something in lowercase {i}"}], "instruction_id": f"i{i}",
             "verifiers": [LOWER]} for i in range(8)]
    job = _job("online_dpo", str(Path(tmp) / "online"), rows, trl={"max_steps": 1}, options={
        "iterations": 2, "samples_per_prompt": 4, "max_new_tokens": 16, "temperature": 1.0, "sandbox": {"timeout_s": 2.0},
        "generation": {"backend": "vllm", "model": "embedded", "gpu_memory_utilization": 0.3, "enforce_eager": True}})
    Path(job.output_dir).mkdir(parents=True, exist_ok=True)
    res = _launch(job, n_gpus)
    its = res["iterations"]
    return (f"{res['world_size']} rank(s), 2 iterations: pairs {[i['pairs'] for i in its]}, "
            f"steps {[i['steps'] for i in its]}")


def gpu_state() -> tuple[int, str]:
    """(usable CUDA GPUs, reason when nvidia-smi lists GPUs that torch cannot use)."""
    import shutil

    import torch

    listed = []
    if shutil.which("nvidia-smi"):
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True)
        listed = [line for line in out.stdout.splitlines() if line.startswith("GPU ")]
    if torch.cuda.is_available():
        return torch.cuda.device_count(), ""
    if not listed:
        return 0, ""
    driver = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                            capture_output=True, text=True).stdout.strip().splitlines()
    return 0, (f"nvidia-smi lists {len(listed)} GPU(s) (driver {driver[0] if driver else '?'}) but torch "
               f"{torch.__version__} (CUDA {torch.version.cuda or 'none: a CPU build'}) cannot use them. torch 2.13's "
               "CUDA 13 build needs an NVIDIA driver >= 580; with a CPU build, reinstall with `make clean setup`.")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="outputs/bench/gpu_check.json")
    a = ap.parse_args()
    import torch

    n_gpus, problem = gpu_state()
    if problem:
        print(f"gpu-check: FAILED: {problem}", file=sys.stderr)
        return 2
    if not n_gpus:
        print("gpu-check: no GPU on this machine (nvidia-smi lists none, torch sees none): nothing to check")
        return 0
    results = {"device": torch.cuda.get_device_name(0), "gpus": n_gpus, "checks": {}, "tokens_per_s": {}}
    with tempfile.TemporaryDirectory() as tmp:
        checks = [("vllm generate + judge", lambda: check_vllm(results)),
                  ("transformers generate + likelihood judge", lambda: check_transformers(results)),
                  ("SFT step (CUDA)", lambda: check_train("sft", tmp)),
                  ("DPO step (CUDA)", lambda: check_train("dpo", tmp)),
                  ("online DPO loop (CUDA)", lambda: check_train("online_dpo", tmp)),
                  (f"ZeRO-3 SFT save, {n_gpus} rank(s)", lambda: check_zero3_save(tmp, n_gpus)),
                  (f"online DPO x2 under torchrun, {n_gpus} rank(s)", lambda: check_online_launch(tmp, n_gpus))]
        for name, fn in checks:
            t0 = time.time()
            try:
                detail, ok = fn(), True
            except Exception as e:  # report and go on: one table with every check
                detail, ok = f"{type(e).__name__}: {e}"[:300], False
                traceback.print_exc()
            results["checks"][name] = {"ok": ok, "detail": detail, "seconds": round(time.time() - t0, 1)}
    tps = results["tokens_per_s"]
    if tps.get("vllm") and tps.get("transformers"):
        results["vllm_vs_transformers"] = round(tps["vllm"] / tps["transformers"], 2)
    print(f"\n{'check':<42} {'result':<6} detail")
    for name, r in results["checks"].items():
        print(f"{name:<42} {'PASS' if r['ok'] else 'FAIL':<6} {r['detail']}  ({r['seconds']} s)")
    if "vllm_vs_transformers" in results:
        print(f"vLLM vs transformers: {results['vllm_vs_transformers']}x tokens/s")
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(results, indent=2))
    return 0 if all(r["ok"] for r in results["checks"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
