"""Slurm for real: a one-node cluster (munged, slurmctld, slurmd on this machine, from a temporary config)
runs the scripts `autoif sweep --slurm --submit` writes, and the per-job generation caches merge.

The cluster needs Debian's `slurm-wlm` and `munge` (.ci/run installs them); without their binaries the
cluster tests skip, saying so. The daemons run as this user from a fresh temporary folder, on free ports,
without cgroups (proctrack/linuxproc, task/none) or accounting, and are killed at the end of the module.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from autoif_lib import io, results, sweeps
from autoif_lib.models.cache import GenerationCache, cache_file, merge_node_caches

ROOT = Path(__file__).resolve().parent.parent
SMOKE = ROOT / "params" / "autoif" / "smoke.yaml"
BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "scontrol", "scancel")

# Two cells over the smoke recipe that differ only in the evaluation stage (11): stages 00-10 are shared, so
# the prefix job builds them and each array task runs only stage 11. Back-translation off keeps it cheap.
# Each task asks for both CPUs of the test node, so tasks run one at a time (two torch processes on two
# cores would oversubscribe them), with the same thread count as the local run they are compared with.
TINY = f"""
sweep: slurm_tiny
recipe: {SMOKE}
seeds: [0]
metrics: [prompt_strict, heldout_pass_rate, 07_export.n_dpo, 01_augment.n_instructions]
variants:
  tiny: {{stages.04_backtranslate.backtranslate: false}}
grid:
  stages.11_evaluate.ifeval_subset: [3, 2]
slurm: {{gpus: 0, cpus: 2, mem: 2G, time: "0:30:00", collect_cpus: 1, collect_mem: 1G, collect_time: "0:10:00"}}
"""


# ---------------------------------------------------------------------------
# the per-job generation caches (no cluster needed)
# ---------------------------------------------------------------------------

def test_cache_file_is_per_job_under_slurm(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    assert cache_file(d, env={}) == d / "generations.sqlite"
    assert cache_file(d, env={"SLURM_JOB_ID": "42"}, host="gpu-node07") == d / "nodes" / "gpu-node07-42.sqlite"
    assert cache_file(d, env={"SLURM_JOB_ID": "42", "AUTOIF_CACHE_PER_JOB": "0"}) == d / "generations.sqlite"
    assert cache_file(d, env={"AUTOIF_CACHE_PER_JOB": "1"}, host="h") == d / "nodes" / f"h-{os.getpid()}.sqlite"
    # the stage context's cache (what every generator and training job of a stage opens) follows the rule
    from types import SimpleNamespace

    from autoif_lib.runs import StageContext

    ctx = SimpleNamespace(store=tmp_path / "out" / "store" / "autoif")
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.delenv("AUTOIF_CACHE_PER_JOB", raising=False)
    assert StageContext.cache_path.fget(ctx) == tmp_path / "out" / "cache" / "generations.sqlite"
    monkeypatch.setenv("SLURM_JOB_ID", "7")
    assert StageContext.cache_path.fget(ctx) == tmp_path / "out" / "cache" / "nodes" / f"{socket.gethostname()}-7.sqlite"


def _journal_mode(path) -> str:
    db = sqlite3.connect(str(path))
    try:
        return db.execute("PRAGMA journal_mode").fetchone()[0]
    finally:
        db.close()


def test_node_caches_merge_into_the_main_cache(tmp_path):
    d = tmp_path / "cache"
    main = GenerationCache(d / "generations.sqlite")
    main.put_many([("k0", "main's answer", None), ("k1", "main's k1", None)])
    main.close()
    a = GenerationCache(d / "nodes" / "n1-11.sqlite")
    a.put_many([("k1", "node1's k1", None), ("k2", "node1's k2", {"model": "m"})])
    b = GenerationCache(d / "nodes" / "n2-12.sqlite")
    b.put_many([("k2", "node2's k2", None), ("k3", "node2's k3", None)])
    # a per-job file reads the main cache for what it lacks, and never writes it
    assert a.get_many(["k0", "k1", "k2", "kx"]) == {"k0": "main's answer", "k1": "node1's k1", "k2": "node1's k2"}
    assert len(a) == 2
    a.close()
    b.close()
    # one machine per file: a rollback journal (its locks hold on network filesystems); the main file is WAL
    assert _journal_mode(d / "nodes" / "n1-11.sqlite") == "delete" and _journal_mode(d / "generations.sqlite") == "wal"

    assert merge_node_caches(d) == {"files": 2, "added": 2, "rows": 4}
    got = GenerationCache(d / "generations.sqlite")
    # INSERT OR IGNORE: what the main cache had stays, each key once, the first node file wins a shared key
    assert got.get_many(["k0", "k1", "k2", "k3"]) == {"k0": "main's answer", "k1": "main's k1", "k2": "node1's k2",
                                                       "k3": "node2's k3"}
    assert len(got) == 4
    got.close()
    db = sqlite3.connect(str(d / "generations.sqlite"))
    assert db.execute("SELECT meta FROM completions WHERE key='k2'").fetchone()[0] == json.dumps({"model": "m"})
    assert db.execute("SELECT COUNT(*), COUNT(DISTINCT key) FROM completions").fetchone() == (4, 4)
    db.close()
    # merging again adds nothing; the job files are kept
    assert merge_node_caches(d) == {"files": 2, "added": 0, "rows": 4}
    assert sorted(p.name for p in (d / "nodes").iterdir()) == ["n1-11.sqlite", "n2-12.sqlite"]
    # the checkpoint put everything into the main file: a later job's immutable snapshot sees all of it
    c = GenerationCache(d / "nodes" / "n3-13.sqlite")
    assert c.get_many(["k0", "k1", "k2", "k3"]) == {"k0": "main's answer", "k1": "main's k1", "k2": "node1's k2",
                                                     "k3": "node2's k3"}
    assert len(c) == 0
    c.close()
    assert merge_node_caches(tmp_path / "nothing") == {"files": 0, "added": 0, "rows": None}


def test_collect_merges_the_caches_of_the_sweep_outputs(tmp_path):
    spec = tmp_path / "thr.yaml"
    spec.write_text(f"sweep: thr\nrecipe: {SMOKE}\ngrid: {{stages.06_verify_score.pass_threshold: [0.5, 0.8]}}\n")
    sw = sweeps.load_sweep(spec)
    out = tmp_path / "out"
    node = GenerationCache(out / "cache" / "nodes" / "n1-5.sqlite")
    node.put_many([("k", "text", None)])
    node.close()
    lines = []
    sweeps.collect(sw, str(out), echo=lines.append, figures=False)
    assert GenerationCache(out / "cache" / "generations.sqlite").get_many(["k"]) == {"k": "text"}
    assert lines[0] == f"generation cache {out}/cache: merged 1 per-job file(s), 1 new completion(s), 1 in all"


# ---------------------------------------------------------------------------
# a one-node Slurm cluster
# ---------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    def __init__(self, base: Path, conf: Path, node: str):
        self.base, self.conf, self.node = base, conf, node
        self.env = {**os.environ, "SLURM_CONF": str(conf)}

    def run(self, *cmd: str, check: bool = True) -> str:
        p = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=60)
        if check and p.returncode:
            raise AssertionError(f"{' '.join(cmd)}: exit {p.returncode}: {p.stderr}{self.logs()}")
        return p.stdout

    def jobs(self, job_id: str) -> list[dict]:
        """``scontrol show job``: one dict per record (an array job: one per task once they started)."""
        out = self.run("scontrol", "-o", "show", "job", job_id)
        return [dict(kv.split("=", 1) for kv in line.split() if "=" in kv) for line in out.splitlines() if line.strip()]

    def wait(self, job_ids, timeout: float) -> None:
        deadline = time.time() + timeout
        while self.run("squeue", "-h", "-o", "%i", "-j", ",".join(job_ids)).strip():
            if time.time() > deadline:
                raise AssertionError(f"jobs {job_ids} still queued after {timeout} s:\n"
                                     + self.run("squeue") + self.logs())
            time.sleep(1)

    def logs(self) -> str:
        return "".join(f"\n--- {p.name} ---\n" + p.read_text(errors="replace")[-3000:]
                       for p in sorted((self.base / "log").glob("*.log")))


def _start(cmd, log: Path) -> subprocess.Popen:
    with open(log, "ab") as fh:
        return subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def slurm():
    missing = [b for b in BINARIES if not shutil.which(b)]
    if missing:
        pytest.skip(f"Slurm is not installed here (no {', '.join(missing)} on PATH); `apt-get install slurm-wlm "
                    "munge` (what .ci/run does) runs these tests")
    # munged wants every folder above its socket open to all (pytest's tmp folders are 0700)
    base = Path(tempfile.mkdtemp(prefix="autoif-slurm-", dir="/tmp"))
    base.chmod(0o755)
    for sub in ("munge", "state", "spool", "log"):
        (base / sub).mkdir(mode=0o755)
        (base / sub).chmod(0o755)
    key = base / "munge" / "munge.key"
    key.write_bytes(os.urandom(128))
    key.chmod(0o600)
    sock = base / "munge" / "munge.socket"
    procs: list[subprocess.Popen] = []
    cluster = None
    try:
        procs.append(_start(["munged", "-F", f"--socket={sock}", f"--key-file={key}", f"--pid-file={base}/munge/munged.pid",
                             f"--seed-file={base}/munge/munged.seed", f"--log-file={base}/log/munged.log"],
                            base / "log" / "munged.out.log"))
        deadline = time.time() + 30
        while not sock.exists():
            if procs[0].poll() is not None or time.time() > deadline:
                pytest.fail("munged did not start:\n" + "".join(p.read_text() for p in (base / "log").glob("munged*")))
            time.sleep(0.2)
        # this machine as slurmd sees it (CPUs, sockets, cores, threads, RealMemory), so the node is valid
        hw = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, check=True).stdout.splitlines()[0]
        node = re.match(r"NodeName=(\S+)", hw).group(1)
        user = __import__("pwd").getpwuid(os.getuid()).pw_name
        conf = base / "slurm.conf"
        conf.write_text("\n".join([
            "ClusterName=autoiftest", f"SlurmctldHost={node}(127.0.0.1)",
            f"SlurmctldPort={_free_port()}", f"SlurmdPort={_free_port()}",
            "AuthType=auth/munge", "CredType=cred/munge", f"AuthInfo=socket={sock}",
            f"SlurmUser={user}", f"SlurmdUser={user}",
            f"StateSaveLocation={base}/state", f"SlurmdSpoolDir={base}/spool",
            f"SlurmctldPidFile={base}/slurmctld.pid", f"SlurmdPidFile={base}/slurmd.pid",
            f"SlurmctldLogFile={base}/log/slurmctld.log", f"SlurmdLogFile={base}/log/slurmd.log",
            "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none",   # no cgroups in a container
            "JobAcctGatherType=jobacct_gather/none", "AccountingStorageType=accounting_storage/none",
            "JobCompType=jobcomp/none", "SwitchType=switch/none", "MpiDefault=none", "MailProg=/bin/true",
            "SelectType=select/cons_tres", "SelectTypeParameters=CR_CPU_Memory", "SchedulerType=sched/backfill",
            "ReturnToService=2", "MinJobAge=3600",                       # finished jobs stay visible to scontrol
            "SlurmctldTimeout=30", "SlurmdTimeout=30", "InactiveLimit=0", "KillWait=5", "Waittime=0",
            f"{hw} NodeAddr=127.0.0.1 State=UNKNOWN",
            f"PartitionName=debug Nodes={node} Default=YES MaxTime=INFINITE State=UP", ""]))
        procs.append(_start(["slurmctld", "-D", "-f", str(conf)], base / "log" / "slurmctld.out.log"))
        procs.append(_start(["slurmd", "-D", "-f", str(conf)], base / "log" / "slurmd.out.log"))
        cluster = Cluster(base, conf, node)
        deadline = time.time() + 90
        while cluster.run("sinfo", "-h", "-N", "-o", "%T", check=False).strip() != "idle":
            if any(p.poll() is not None for p in procs) or time.time() > deadline:
                pytest.fail("the Slurm node did not come up idle: "
                            + cluster.run("sinfo", "-N", check=False) + cluster.logs())
            time.sleep(0.5)
        yield cluster
    finally:
        if cluster is not None:
            ids = cluster.run("squeue", "-h", "-o", "%i", check=False).split()
            if ids:
                cluster.run("scancel", *ids, check=False)
                time.sleep(3)
        for p in reversed(procs):  # slurmd, slurmctld, munged
            _stop(p)
        shutil.rmtree(base, ignore_errors=True)


def _write_tiny(tmp_path) -> Path:
    spec = tmp_path / "slurm_tiny.yaml"
    spec.write_text(TINY)
    return spec


# The interpreter the scripts exec, replaced by one that records how it was called and from where.
FAKE_PYTHON = """#!/bin/bash
printf '%s\\t%s\\t%s\\t%s\\t%s\\t%s\\n' "$(date +%s.%N)" "${SLURM_JOB_ID:-}" "${SLURM_ARRAY_TASK_ID:-}" \\
  "$(command -v {exe})" "${VIRTUAL_ENV:-}" "$*" >> {log}
case "$*" in *--prefix*) sleep 4; exit "${FAKE_PREFIX_EXIT:-0}";; esac
sleep 1
"""


def _fake_python(tmp_path) -> tuple[Path, Path]:
    log = tmp_path / "calls.tsv"
    fake = tmp_path / "fakepython"
    fake.write_text(FAKE_PYTHON.replace("{exe}", Path(sys.executable).name).replace("{log}", str(log)))
    fake.chmod(0o755)
    return fake, log


def _calls(log: Path) -> list[dict]:
    keys = ("t", "job", "task", "python", "venv", "args")
    return sorted((dict(zip(keys, line.split("\t"))) for line in log.read_text().splitlines()),
                  key=lambda c: float(c["t"]))


def _submit_env(monkeypatch, slurm):
    """Submit from an environment that has nothing of this Python's on PATH: the scripts' setup must add it."""
    here = str(Path(sys.executable).parent)
    monkeypatch.setenv("PATH", os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if p != here))
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    monkeypatch.setenv("SLURM_CONF", str(slurm.conf))


def test_chain_prefix_then_array_then_collect(slurm, tmp_path, monkeypatch):
    """The written scripts, submitted: the prefix job runs first, each array task after it runs its line of
    cells.txt, collect runs last; every job finds this Python environment through the default setup."""
    fake, log = _fake_python(tmp_path)
    _submit_env(monkeypatch, slurm)
    sw = sweeps.load_sweep(_write_tiny(tmp_path))
    out = str(tmp_path / "out")
    info = sweeps.write_slurm(sw, out, submit=True, python=str(fake), echo=lambda *_: None)
    p, a, c = info["prefix_job"], info["array_job"], info["collect_job"]
    assert slurm.jobs(a)[0]["Dependency"] == f"afterok:{p}(unfulfilled)"
    assert slurm.jobs(c)[0]["Dependency"] == f"afterany:{a}_*(unfulfilled)"
    slurm.wait([p, a, c], timeout=120)
    assert [(j["JobState"], j["ExitCode"]) for j in slurm.jobs(p) + slurm.jobs(a) + slurm.jobs(c)] == \
        [("COMPLETED", "0:0")] * 4
    calls = _calls(log)
    spec = sw.path.resolve()
    assert [c_["args"] for c_ in calls[:1] + calls[3:]] == [
        f"-m autoif_lib.cli sweep {spec} --prefix --no-progress --outputs {out}",
        f"-m autoif_lib.cli sweep {spec} --collect --outputs {out}"]
    cells = sorted((c_["task"], c_["args"]) for c_ in calls[1:3])
    assert cells == [(str(i), f"-m autoif_lib.cli sweep {spec} --cell {cell.id} --no-figures --no-progress --outputs {out}")
                     for i, cell in enumerate(sw.cells)]
    assert calls[0]["job"] == p and calls[3]["job"] == c
    # the default setup put this environment first on PATH (and activated it when it is a virtualenv)
    venv = sys.prefix if sys.prefix != sys.base_prefix else ""
    assert {(c_["python"], c_["venv"]) for c_ in calls} == {(os.path.abspath(sys.executable), venv)}


def test_a_failed_prefix_cancels_the_array_and_collect_still_runs(slurm, tmp_path, monkeypatch):
    fake, log = _fake_python(tmp_path)
    _submit_env(monkeypatch, slurm)
    monkeypatch.setenv("FAKE_PREFIX_EXIT", "3")     # sbatch exports the submitting environment to the jobs
    sw = sweeps.load_sweep(_write_tiny(tmp_path))
    info = sweeps.write_slurm(sw, str(tmp_path / "out"), submit=True, python=str(fake), echo=lambda *_: None)
    p, a, c = info["prefix_job"], info["array_job"], info["collect_job"]
    slurm.wait([p, a, c], timeout=120)
    assert [(j["JobState"], j["ExitCode"]) for j in slurm.jobs(p)] == [("FAILED", "3:0")]
    assert [(j["JobState"], j["Reason"]) for j in slurm.jobs(a)] == [("CANCELLED", "DependencyNeverSatisfied")]
    assert [j["JobState"] for j in slurm.jobs(c)] == ["COMPLETED"]
    assert [c_["args"].split()[4] for c_ in _calls(log)] == ["--prefix", "--collect"]


def _table(path: Path) -> list[dict]:
    df = results.read_table(path).drop(columns=["finished_at"])
    return df.astype(object).where(df.notna(), None).to_dict(orient="records")  # NaN != NaN


def _keys(path: Path) -> set[str]:
    db = sqlite3.connect(str(path))
    try:
        return {k for (k,) in db.execute("SELECT key FROM completions")}
    finally:
        db.close()


def _when(stamp: str) -> float:
    return time.mktime(time.strptime(stamp, "%Y-%m-%dT%H:%M:%S"))


@pytest.mark.slow  # ~4 min on 2 cores: the smoke pipeline once on Slurm and once locally
def test_sweep_on_slurm_equals_the_local_run(slurm, tmp_path):
    """`autoif sweep --slurm --submit` on a real cluster: the prefix job builds stages 00-10 once, the array
    tasks run only their own stage 11 after it, collect merges the per-job caches and writes a results.csv
    equal to a local run's of the same sweep (cells, run ids, stage keys, values)."""
    spec = _write_tiny(tmp_path)
    sw = sweeps.load_sweep(spec)
    order = sw.cells[0].load().pipeline.order
    assert sweeps.shared_stages(sw) == order[:-1]
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_") and k != "AUTOIF_CACHE_PER_JOB"}
    cli = [sys.executable, "-m", "autoif_lib.cli", "sweep", str(spec)]

    on_slurm = tmp_path / "slurm_outputs"
    sub = subprocess.run(cli + ["--slurm", "--submit", "--outputs", str(on_slurm)], cwd=ROOT, capture_output=True,
                         text=True, env={**clean, "SLURM_CONF": str(slurm.conf)}, timeout=120)
    assert sub.returncode == 0, sub.stderr
    m = re.search(r"submitted prefix job (\d+), then array job (\d+) \(2 tasks\) and collect job (\d+)", sub.stdout)
    assert m, sub.stdout
    p, a, c = m.groups()
    assert slurm.jobs(a)[0]["Dependency"] == f"afterok:{p}(unfulfilled)"
    assert slurm.jobs(c)[0]["Dependency"] == f"afterany:{a}_*(unfulfilled)"
    slurm.wait([p, a, c], timeout=900)
    pj, tasks, cj = slurm.jobs(p)[0], slurm.jobs(a), slurm.jobs(c)[0]
    logs = "".join(f"\n--- {x.name} ---\n" + x.read_text()[-3000:]
                   for x in sorted((sw.dir(str(on_slurm)) / "slurm" / "logs").glob("*.out")))
    assert [(j["JobState"], j["ExitCode"]) for j in [pj, *tasks, cj]] == [("COMPLETED", "0:0")] * 4, logs
    tasks.sort(key=lambda j: int(j["ArrayTaskId"]))
    assert [j["ArrayTaskId"] for j in tasks] == ["0", "1"]
    assert all(_when(t["StartTime"]) >= _when(pj["EndTime"]) for t in tasks)
    assert _when(cj["StartTime"]) >= max(_when(t["EndTime"]) for t in tasks)
    # the tasks found every shared stage built and ran only their own
    for cell in sw.cells:
        rec = sweeps.cell_record(sw.dir(str(on_slurm)), cell)
        assert rec["status"] == "done" and rec["stages"] == {s: ("ran" if s == "11_evaluate" else "skipped")
                                                            for s in order}, cell.id

    local = tmp_path / "local_outputs"
    run = subprocess.run(cli + ["--outputs", str(local), "--no-progress"], cwd=ROOT, capture_output=True, text=True,
                         env=clean, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]

    slurm_table = _table(sw.dir(str(on_slurm)) / "results.csv")
    assert slurm_table == _table(sw.dir(str(local)) / "results.csv")
    assert [(r["variant"], r["metric"], r["n"]) for r in slurm_table if r["metric"] == "prompt_strict"] == [
        ("tiny/ifeval_subset=3", "prompt_strict", 3), ("tiny/ifeval_subset=2", "prompt_strict", 2)]
    assert {r["run_id"] for r in slurm_table} == {cell.load().run_id for cell in sw.cells}
    # what each cell's evaluation generated is byte-identical
    for cell in sw.cells:
        d = cell.load(str(on_slurm)).stage_dir("11_evaluate")
        for f in ("ifeval_base.jsonl", "trained_instructions_base.jsonl"):
            assert io.sha256_file(d / f) == io.sha256_file(cell.load(str(local)).stage_dir("11_evaluate") / f)

    # every job wrote its own cache file; collect merged them all into the main cache
    nodes = on_slurm / "cache" / "nodes"
    assert sorted(x.name for x in nodes.iterdir() if x.suffix == ".sqlite") == sorted(
        f"{socket.gethostname()}-{j['JobId']}.sqlite" for j in [pj, *tasks])
    merged = _keys(on_slurm / "cache" / "generations.sqlite")
    assert merged == set().union(*(_keys(x) for x in nodes.glob("*.sqlite")))
    assert merged == _keys(local / "cache" / "generations.sqlite") and not (local / "cache" / "nodes").exists()
