"""`make gpu-check` tells the truth on a machine where it cannot run: exit 0 with "no GPU" when there is none,
exit 2 naming the reason when `nvidia-smi` lists a GPU that torch cannot use (here: torch's CPU build, as on a
node whose driver is too old for torch's CUDA build)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a usable GPU: run make gpu-check")


def _run(root, path_prefix, tmp_path):
    env = dict(os.environ, PATH=path_prefix + os.pathsep + os.environ["PATH"])
    return subprocess.run([sys.executable, str(root / "bench" / "gpu_check.py"), "--out", str(tmp_path / "g.json")],
                          capture_output=True, text=True, env=env, timeout=120)


def test_no_gpu_at_all_exits_0(root, tmp_path):
    (tmp_path / "bin").mkdir()  # an empty dir first on PATH: the real nvidia-smi, if any, would still be found
    proc = _run(root, str(tmp_path / "bin"), tmp_path)
    if subprocess.run(["sh", "-c", "command -v nvidia-smi"], capture_output=True).returncode == 0:
        pytest.skip("this machine has an nvidia-smi")
    assert proc.returncode == 0 and "no GPU" in proc.stdout


def test_gpu_listed_but_unusable_exits_2(root, tmp_path):
    b = tmp_path / "bin"
    b.mkdir()
    smi = b / "nvidia-smi"
    smi.write_text('#!/bin/sh\ncase "$*" in *driver_version*) echo 550.54.15;; '
                   '*) echo "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-0)";; esac\n')
    smi.chmod(0o755)
    proc = _run(root, str(b), tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "nvidia-smi lists 1 GPU(s) (driver 550.54.15) but torch" in proc.stderr
    assert "driver >= 580" in proc.stderr
    assert not (tmp_path / "g.json").exists()
