"""Generation throughput of the model layer vs raw batched ``model.generate`` vs one prompt at a time, and
the same layer on the vLLM backend.

    python bench/bench_generation.py [--out outputs/bench/generation.json] [--prompts 16] [--tokens 48] [--no-vllm]

All run in one process on the same model, same prompts and greedy settings, interleaved over ``--repeats``
rounds so machine noise hits them alike; we report the median tokens/s and the ratios. The layer runs
without a cache (otherwise it would be measuring SQLite lookups). vLLM runs as the CPU recipes configure it
(eager, the dtype ``auto`` picks, as the transformers backend's); its engine start is reported apart.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from autoif_lib import envinfo, io, throughput  # noqa: E402
from autoif_lib.models import Generator, ModelSpec, SamplingParams  # noqa: E402


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="outputs/bench/generation.json")
    ap.add_argument("--model", default="embedded")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--tokens", type=int, default=48)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--no-vllm", action="store_true", help="skip the vLLM backend")
    ap.add_argument("--vllm-compiled", action="store_true",
                    help="vLLM with torch.compile (engine start ~3 min on CPU) instead of eager")
    a = ap.parse_args(argv)

    spec = ModelSpec(model=a.model, batch_size=a.batch_size)
    gen = Generator(spec, cache_path=None, progress=False)
    backend = gen.backend  # load once, shared by all three methods
    prompts = (throughput.DEMO_PROMPTS * 8)[: a.prompts]
    sp = SamplingParams(temperature=0.0, max_new_tokens=a.tokens, repetition_penalty=1.2)
    # Warm-up, both paths: first calls pay one-off costs (kernels, allocator, chat template).
    throughput.measure_raw(backend, prompts[:a.batch_size], sp, batch_size=a.batch_size)
    throughput.measure_layer(gen, prompts[:a.batch_size], sp)

    methods = {
        "layer": lambda: throughput.measure_layer(gen, prompts, sp),
        "raw_batched": lambda: throughput.measure_raw(backend, prompts, sp, batch_size=a.batch_size),
        "one_at_a_time": lambda: throughput.measure_raw(backend, prompts, sp, batch_size=1),
    }
    vllm_start = None
    if not a.no_vllm:
        vspec = ModelSpec(backend="vllm", model=a.model, enforce_eager=not a.vllm_compiled)
        vgen = Generator(vspec, cache_path=None, progress=False)
        t0 = time.perf_counter()
        vgen.backend  # the engine starts here (in a process of its own)
        vllm_start = round(time.perf_counter() - t0, 1)
        throughput.measure_layer(vgen, prompts[:a.batch_size], sp)  # warm-up
        methods["vllm_layer"] = lambda: throughput.measure_layer(vgen, prompts, sp)
    runs: dict[str, list[dict]] = {k: [] for k in methods}
    order = list(methods)
    for r in range(a.repeats):
        # Rotate the order each round so drift in machine load does not favour one method.
        for k in order[r % len(order):] + order[:r % len(order)]:
            runs[k].append(methods[k]())
        print(f"round {r + 1}/{a.repeats}: " + ", ".join(
            f"{k} {v[-1]['tokens_per_s']:.1f} tok/s" for k, v in runs.items()), flush=True)
    med = {k: statistics.median(x["tokens_per_s"] for x in v) for k, v in runs.items()}
    result = {
        "bench": "generation",
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "model": a.model, "dtype": str(backend.dtype), "device": backend.device,
        "batch_size": a.batch_size, "prompts": a.prompts, "max_new_tokens": a.tokens, "repeats": a.repeats,
        "median_tokens_per_s": med,
        "ratio_layer_vs_raw_batched": round(med["layer"] / med["raw_batched"], 3),
        "ratio_layer_vs_one_at_a_time": round(med["layer"] / med["one_at_a_time"], 3),
        "targets": {"layer_vs_raw_batched": ">= 0.9", "layer_vs_one_at_a_time": ">= 4"},
        "vllm": None if a.no_vllm else {
            "engine_start_s": vllm_start, "enforce_eager": not a.vllm_compiled, "dtype": "auto",
            "ratio_vllm_vs_transformers_layer": round(med["vllm_layer"] / med["layer"], 3),
            "note": "the transformers layer batches --batch-size rows per call; vLLM takes all rows in one call"},
        "runs": runs,
        "machine": envinfo.machine(),
        "packages": envinfo.package_versions(("torch", "transformers", "vllm")),
    }
    if not a.no_vllm:
        vgen.close()
    io.write_json(a.out, result)
    print(f"layer/raw batched = {result['ratio_layer_vs_raw_batched']}, "
          f"layer/one-at-a-time = {result['ratio_layer_vs_one_at_a_time']}"
          + (f", vllm/transformers layer = {result['vllm']['ratio_vllm_vs_transformers_layer']} "
             f"(engine start {vllm_start} s)" if result["vllm"] else "") + f"  -> {a.out}")
    return result


if __name__ == "__main__":
    main()
