"""A generation killed with SIGKILL mid-way and re-run completes with the same outputs."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

SCRIPT = r"""
import json, sys
from autoif_lib.models import Generator, ModelSpec, SamplingParams
g = Generator(ModelSpec(batch_size=2), cache_path=sys.argv[1], progress=False)
prompts = [f"Write one sentence about the number {i}." for i in range(8)]
out = g.generate(prompts, SamplingParams(n=1, temperature=0.9, top_p=0.95, max_new_tokens=10, seed=11))
print(json.dumps({"out": out, "stats": g.stats}))
"""


def _run(cache):
    r = subprocess.run([sys.executable, "-c", SCRIPT, str(cache)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def _rows(cache):
    if not cache.exists():
        return 0
    try:
        with sqlite3.connect(str(cache), timeout=1) as db:
            return db.execute("SELECT COUNT(*) FROM completions").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def test_kill_and_rerun_gives_same_outputs(tmp_path):
    reference = _run(tmp_path / "ref.sqlite")
    cache = tmp_path / "killed.sqlite"
    p = subprocess.Popen([sys.executable, "-c", SCRIPT, str(cache)], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 240
    while _rows(cache) < 2 and time.time() < deadline and p.poll() is None:
        time.sleep(0.05)
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    done_before = _rows(cache)
    assert 2 <= done_before < 8, f"kill landed at {done_before} rows"
    resumed = _run(cache)
    assert resumed["out"] == reference["out"]
    assert resumed["stats"]["cache_hits"] == done_before
    assert resumed["stats"]["generated"] == 8 - done_before
