"""Sweeps: expansion and validation, resume, failure isolation, the results schema, Slurm job definitions,
GPU sets and the stage lock. The runner is replaced by a fake that writes what a finished run leaves on
disk (its plan and the evaluation stage's files), with values that follow from the params, so every row
of the table can be checked exactly."""

from __future__ import annotations

import json
import math
import threading
import time
from pathlib import Path

import pytest

from autoif_lib import io, results, sweeps
from autoif_lib.params import ParamsError
from autoif_lib.recipes import load_recipe
from autoif_lib.runner import StageFailed, stage_lock
from autoif_lib.runs import PLAN

ROOT = Path(__file__).resolve().parent.parent
SMOKE = ROOT / "params" / "autoif" / "smoke.yaml"
SPAR_SMOKE = ROOT / "params" / "spar" / "smoke.yaml"


def write_sweep(tmp_path, text: str, name="sweep.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text.replace("$SMOKE", str(SMOKE)).replace("$SPAR", str(SPAR_SMOKE)))
    return p


class FakeRunner:
    """Stands in for runner.run_recipe: writes the plan and stage 11's outputs. Pr(S) = pass_threshold / 2
    (so 0.8 -> 40 %), held-out pass rate = seed / 10; ``fail`` names variants' thresholds that fail."""

    def __init__(self, fail=(), interrupt_at=None):
        self.calls = []
        self.fail = set(fail)
        self.interrupt_at = interrupt_at

    def __call__(self, params_path, stages=None, outputs=None, progress=False, echo=print, overrides=None):
        over = dict(overrides or {})
        if outputs:
            over["outputs"] = outputs
        r = load_recipe(params_path, overrides=over)
        self.calls.append(r.run_id)
        if self.interrupt_at is not None and len(self.calls) == self.interrupt_at:
            raise KeyboardInterrupt("killed")
        thr = r.stages["06_verify_score"].pass_threshold
        if thr in self.fail:
            raise StageFailed("stage 06_verify_score failed; see notebook.ipynb")
        r.run_dir.mkdir(parents=True, exist_ok=True)
        io.write_json(r.run_dir / PLAN, r.plan())
        d = r.stage_dir("11_evaluate")
        d.mkdir(parents=True, exist_ok=True)
        (r.run_dir / "11_evaluate").symlink_to(d, target_is_directory=True)
        for ck in ("base", "online_dpo"):
            io.write_json(d / f"ifeval_{ck}_summary.json",
                          {"n_prompts": 16, "prompt_strict": thr / 2, "prompt_loose": 0.5, "inst_strict": 0.25,
                           "inst_loose": 0.5, "per_instruction": {"a": {"n": 20}, "b": {"n": 5}}})
        io.write_json(d / "metrics.json", {"checkpoints": {"base": "embedded", "online_dpo": "x"},
                                           "heldout": {"base": {"n": 8, "mean_pass_rate": r.seed / 10,
                                                                "mean_pass_rate_se": 0.05}}})
        for s in r.pipeline.order[:-1]:
            sd = r.stage_dir(s)
            sd.mkdir(parents=True, exist_ok=True)
            if s == "07_export":
                io.write_json(sd / "metrics.json", {"n_sft": int(10 * thr)})
            (r.run_dir / s).symlink_to(sd, target_is_directory=True)
        return {s: "ran" for s in r.pipeline.order}


GRID = """
sweep: thr
recipe: $SMOKE
seeds: [0, 1]
metrics: [prompt_strict, heldout_pass_rate, 07_export.n_sft]
grid:
  stages.06_verify_score.pass_threshold: [0.5, 0.8]
"""


# ---------------------------------------------------------------------------
# expansion and validation
# ---------------------------------------------------------------------------

def test_grid_times_variants_times_seeds(tmp_path):
    p = write_sweep(tmp_path, """
sweep: abl
recipe: $SMOKE
seeds: [0, 3]
variants:
  paper: {}
  nojudge: {stages.06_verify_score.run_judge: false}
grid:
  stages.06_verify_score.pass_threshold: [0.5, 0.8]
""")
    sw = sweeps.load_sweep(p)
    assert sw.variants == ["paper/pass_threshold=0.5", "paper/pass_threshold=0.8",
                           "nojudge/pass_threshold=0.5", "nojudge/pass_threshold=0.8"]
    assert [c.id for c in sw.cells][:3] == ["paper/pass_threshold=0.5@s0", "paper/pass_threshold=0.5@s3",
                                            "paper/pass_threshold=0.8@s0"]
    c = sw.cell("nojudge/pass_threshold=0.8@s3")
    assert c.overrides == {"stages": {"06_verify_score": {"run_judge": False, "pass_threshold": 0.8}},
                           "seed": 3, "experiment": "abl"}
    assert c.factors == {"stages.06_verify_score.pass_threshold": 0.8}
    r = c.load()
    assert r.stages["06_verify_score"].run_judge is False and r.stages["06_verify_score"].pass_threshold == 0.8
    assert r.seed == 3 and r.stages["00_environment"].seed == 3
    assert sw.baseline == "paper/pass_threshold=0.5"


def test_variant_may_switch_recipe_and_pipeline(tmp_path):
    p = write_sweep(tmp_path, """
sweep: h2h
recipe: $SMOKE
variants:
  autoif: {}
  spar: {recipe: $SPAR}
metrics: [prompt_strict, judge_heldout_acc]
""")
    sw = sweeps.load_sweep(p)
    assert [c.load().pipeline_name for c in sw.cells] == ["autoif", "spar"]


@pytest.mark.parametrize("body, match", [
    ("sweep: x\nrecipe: $SMOKE\ngird: {a: [1]}\n", r"gird: unknown key \(did you mean 'grid'\?\)"),
    ("sweep: x\nrecipe: $SMOKE\n", "nothing to sweep"),
    ("sweep: x\nrecipe: $SMOKE\nseeds: [0, 0]\nvariants: {a: {}}\n", "repeated seed"),
    ("sweep: x\nrecipe: $SMOKE\nvariants: {a: {seed: 3}}\n", r"variants.a.seed: set by the sweep"),
    ("sweep: x\nrecipe: $SMOKE\ngrid: {stages.06_verify_score.pass_threshold: 0.5}\n", "non-empty list"),
    ("sweep: x\nrecipe: $SMOKE\nvariants: {bad: {stages.06_verify_score.pass_treshold: 0.5}}\n",
     r"variant 'bad' \(seed 0\): .*pass_treshold: unknown key \(did you mean 'pass_threshold'\?\)"),
    ("sweep: x\nrecipe: $SMOKE\nvariants: {a: {}}\nmetrics: [promt_strict]\n",
     r"'promt_strict': no pipeline of this sweep reports it \(did you mean 'prompt_strict'\?\)"),
    ("sweep: x\nrecipe: $SMOKE\nvariants: {a: {}}\nmetrics: [99_nope.n]\n", r"no stage '99_nope'"),
    ("sweep: x\nrecipe: $SMOKE\nvariants: {a: {}}\nbaseline: b\n", r"baseline: 'b' is not a variant"),
    ("sweep: x\nrecipe: missing.yaml\nvariants: {a: {}}\n", "recipe not found"),
    ("sweep: x\nrecipe: $SMOKE\nvariants: {a: {}}\nslurm: {gpu: 8}\n", r"slurm: unknown keys \['gpu'\]"),
])
def test_validation_errors_name_the_problem(tmp_path, body, match):
    with pytest.raises(ParamsError, match=match):
        sweeps.load_sweep(write_sweep(tmp_path, body))


# ---------------------------------------------------------------------------
# running: rows, resume, failures, interruption
# ---------------------------------------------------------------------------

def test_rows_follow_the_runs_and_a_second_invocation_does_nothing(tmp_path):
    sw = sweeps.load_sweep(write_sweep(tmp_path, GRID))
    out = str(tmp_path / "out")
    fake = FakeRunner()
    res = sweeps.run_sweep(sw, out, echo=lambda *_: None, run=fake, figures=False)
    assert len(res["ran"]) == 4 and res["failed"] == [] and len(fake.calls) == 4
    df = results.read_table(Path(res["results"]))
    assert list(df.columns) == list(results.COLUMNS)
    ps = df[df.metric == "prompt_strict"].set_index(["variant", "seed", "checkpoint"])
    assert ps.loc[("pass_threshold=0.8", 1, "online_dpo"), "value"] == pytest.approx(40.0)
    assert ps.loc[("pass_threshold=0.5", 0, "base"), "value"] == pytest.approx(25.0)
    assert ps.loc[("pass_threshold=0.5", 0, "base"), "se"] == pytest.approx(100 * math.sqrt(0.25 * 0.75 / 16))
    assert ps.loc[("pass_threshold=0.5", 0, "base"), "n"] == 16
    ho = df[df.metric == "heldout_pass_rate"].set_index(["variant", "seed"])
    assert ho.loc[("pass_threshold=0.8", 1), "value"] == pytest.approx(10.0)   # seed / 10, in percent
    assert ho.loc[("pass_threshold=0.8", 1), "se"] == pytest.approx(5.0)
    assert set(df[df.metric == "heldout_pass_rate"].checkpoint) == {"base"}      # only base had held-out rows
    n_sft = df[df.metric == "07_export.n_sft"].set_index(["variant", "seed"])
    assert n_sft.loc[("pass_threshold=0.8", 0), "value"] == 8 and n_sft.loc[("pass_threshold=0.8", 0), "checkpoint"] == ""
    row = df.iloc[0]
    assert row.factors == {"stages.06_verify_score.pass_threshold": 0.5}
    assert row.stage_keys == load_recipe(SMOKE, overrides=sw.cells[0].overrides).stage_keys
    # 2 variants x 2 seeds x (2 checkpoints x prompt_strict + base heldout + n_sft)
    assert len(df) == 4 * (2 + 1 + 1)
    again = FakeRunner()
    res2 = sweeps.run_sweep(sw, out, echo=lambda *_: None, run=again, figures=False)
    assert res2["ran"] == [] and len(res2["skipped"]) == 4 and again.calls == []
    assert [s["state"] for s in sweeps.status(sw, out)] == ["done"] * 4


def test_a_failing_variant_is_reported_and_the_rest_go_on(tmp_path):
    sw = sweeps.load_sweep(write_sweep(tmp_path, GRID))
    out = str(tmp_path / "out")
    lines = []
    res = sweeps.run_sweep(sw, out, echo=lines.append, run=FakeRunner(fail={0.5}), figures=False)
    assert res["failed"] == ["pass_threshold=0.5@s0", "pass_threshold=0.5@s1"]
    assert res["ran"] == ["pass_threshold=0.8@s0", "pass_threshold=0.8@s1"]
    rec = sweeps.cell_record(sw.dir(out), sw.cell("pass_threshold=0.5@s0"))
    assert rec["status"] == "failed" and "StageFailed: stage 06_verify_score failed" in rec["error"]
    assert "StageFailed" in Path(rec["log"]).read_text()
    assert any(line.startswith("  FAILED pass_threshold=0.5@s0: StageFailed") for line in lines)
    df = results.read_table(Path(res["results"]))
    assert set(df.variant) == {"pass_threshold=0.8"}
    # fixed: the next invocation runs only the failed cells
    fixed = FakeRunner()
    res2 = sweeps.run_sweep(sw, out, echo=lambda *_: None, run=fixed, figures=False)
    assert res2["ran"] == ["pass_threshold=0.5@s0", "pass_threshold=0.5@s1"] and len(fixed.calls) == 2
    assert set(results.read_table(Path(res2["results"])).variant) == {"pass_threshold=0.5", "pass_threshold=0.8"}


def test_killed_sweep_resumes_to_the_same_table(tmp_path):
    sw = sweeps.load_sweep(write_sweep(tmp_path, GRID))
    whole = sweeps.run_sweep(sw, str(tmp_path / "a"), echo=lambda *_: None, run=FakeRunner(), figures=False)
    out = str(tmp_path / "b")
    with pytest.raises(KeyboardInterrupt):
        sweeps.run_sweep(sw, out, echo=lambda *_: None, run=FakeRunner(interrupt_at=3), figures=False)
    assert [s["state"] for s in sweeps.status(sw, out)] == ["done", "done", "pending", "pending"]
    rest = FakeRunner()
    sweeps.run_sweep(sw, out, echo=lambda *_: None, run=rest, figures=False)
    assert len(rest.calls) == 2                       # only the two unfinished cells

    def table(path):
        df = results.read_table(path).drop(columns=["finished_at"])
        return df.astype(object).where(df.notna(), None).to_dict(orient="records")  # NaN != NaN

    assert table(Path(out) / "sweeps" / "thr" / "results.csv") == table(Path(whole["results"]))


def test_changed_params_make_a_done_cell_stale(tmp_path):
    p = write_sweep(tmp_path, GRID)
    out = str(tmp_path / "out")
    sweeps.run_sweep(sweeps.load_sweep(p), out, echo=lambda *_: None, run=FakeRunner(), figures=False)
    p.write_text(p.read_text().replace("[0.5, 0.8]", "[0.5, 0.8]\n  stages.06_verify_score.n_judgments: [2]"))
    sw2 = sweeps.load_sweep(p)
    assert {s["state"] for s in sweeps.status(sw2, out)} == {"pending"}  # new names: new cells
    p.write_text(GRID.replace("$SMOKE", str(SMOKE)).replace("seeds: [0, 1]", "seeds: [0, 1]\nstages: 00-11"))
    sw3 = sweeps.load_sweep(p)
    rec_path = sweeps.cell_file(sw3.dir(out), sw3.cells[0])
    rec = io.read_json(rec_path)
    io.write_json(rec_path, dict(rec, run_id="smoke-deadbeef"))  # a record for other params
    assert sweeps.status(sw3, out)[0]["state"] == "stale"
    assert not sweeps.cell_done(sw3.dir(out), sw3.cells[0], sw3.cells[0].load(out))


# ---------------------------------------------------------------------------
# the method collectors on hand-made stage outputs
# ---------------------------------------------------------------------------

def _eval_run(tmp_path, pipeline: str, stage: str):
    """(run folder, its evaluation stage's store folder): a run linking one hand-filled stage."""
    run = tmp_path / "run"
    d = tmp_path / "store" / stage[:2]
    d.mkdir(parents=True)
    run.mkdir()
    (run / stage).symlink_to(d, target_is_directory=True)
    io.write_json(run / PLAN, {"pipeline": pipeline, "stages": {stage: {"dir": str(d)}}})
    return run, d


def test_spar_collector_names_iterations_and_judge_se(tmp_path):
    run, d = _eval_run(tmp_path, "spar", "20_evaluate")
    rows = [{"iteration": t, "n_prompts": 16, "n_instructions": 20, "prompt_strict": 25.0, "prompt_loose": 31.2, "inst_strict": 30.0,
             "inst_loose": 35.0, "search_prompt_strict": 31.2, "search_extra_calls_per_prompt": 4.5,
             "judge_heldout_acc": 0.5, "judge_heldout_f1": 0.4, "judge_heldout_single_acc": 0.45} for t in (0, 1)]
    io.write_json(d / "metrics.json", {"rows": rows, "details": {
        "t1_judge_heldout": {"majority": {"n": 24}, "single": {"n": 24}}}})
    got = {(r["checkpoint"], r["metric"]): r for r in results.collect_run(run)}
    assert got[("base", "prompt_strict")]["iteration"] == 0
    assert got[("spar_t1", "search_prompt_strict")]["se"] == pytest.approx(100 * math.sqrt(0.312 * 0.688 / 16))
    assert got[("spar_t1", "judge_heldout_acc")]["se"] == pytest.approx(math.sqrt(0.25 / 24))
    assert got[("spar_t1", "judge_heldout_acc")]["n"] == 24
    assert got[("base", "judge_heldout_acc")]["se"] is None        # no details for t0: no invented n
    assert ("spar_t1", "search_prompt_loose") not in got           # absent values make no rows
    assert got[("spar_t1", "inst_strict")]["se"] == pytest.approx(100 * math.sqrt(0.3 * 0.7 / 20))  # over instructions
    assert got[("spar_t1", "inst_strict")]["n"] == 20
    # an iteration whose actor did not train: no actor rows under its name, the refiner's rows stay
    a = tmp_path / "store" / "06"
    a.mkdir()
    io.write_json(a / "metrics.json", {"trained": False, "steps": 0})
    (run / "06_t1_actor").symlink_to(a, target_is_directory=True)
    got = {(r["checkpoint"], r["metric"]): r for r in results.collect_run(run)}
    assert not [m for ck, m in got if ck == "spar_t1" and m in ("prompt_strict", "prompt_loose", "inst_strict", "inst_loose")]
    assert ("spar_t1", "search_prompt_strict") in got and ("spar_t1", "judge_heldout_acc") in got
    assert ("base", "prompt_strict") in got


def test_autoif_collector_adds_trained_pass_rate_and_paired_deltas(tmp_path):
    run, d = _eval_run(tmp_path, "autoif", "11_evaluate")
    summary = {"prompt_strict": 0.2, "prompt_loose": 0.25, "inst_strict": 0.3, "inst_loose": 0.35, "n_prompts": 200,
               "per_instruction": {"x": {"n": 300}}}
    for ck in ("base", "sft"):
        io.write_json(d / f"ifeval_{ck}_summary.json", summary)
    paired = [{"checkpoint": "base", "split": "trained_instructions", "score_mean": 0.3, "score_se": 0.03, "score_n": 210},
              {"checkpoint": "sft", "split": "trained_instructions", "score_mean": 0.45, "score_se": 0.034, "score_n": 210,
               "delta_diff": 0.15, "delta_se": 0.04, "delta_n": 210},
              {"checkpoint": "sft", "split": "ifeval", "score_mean": 0.2, "score_se": 0.028, "score_n": 200,
               "delta_diff": 0.0, "delta_se": 0.01, "delta_n": 200}]
    io.write_json(d / "metrics.json", {"checkpoints": {"base": "b", "sft": "s"}, "heldout": {}, "paired": paired})
    got = {(r["checkpoint"], r["metric"]): r for r in results.collect_run(run)}
    assert got[("base", "trained_pass_rate")]["value"] == pytest.approx(30.0) and got[("base", "trained_pass_rate")]["n"] == 210
    assert got[("sft", "delta_trained_pass_rate")]["value"] == pytest.approx(15.0)
    assert got[("sft", "delta_trained_pass_rate")]["se"] == pytest.approx(4.0)
    assert got[("sft", "delta_prompt_strict")]["value"] == 0.0
    assert ("base", "delta_trained_pass_rate") not in got and ("sft", "delta_heldout_pass_rate") not in got


# ---------------------------------------------------------------------------
# where it runs: Slurm job definitions, GPU sets, the stage lock
# ---------------------------------------------------------------------------

def test_slurm_array_and_collect_job(tmp_path):
    p = write_sweep(tmp_path, GRID + "slurm: {partition: gpu, gpus: 8, time: '12:00:00', max_parallel: 2, "
                                     "setup: 'source .venv/bin/activate', account: proj}\n")
    sw = sweeps.load_sweep(p)
    out = str(tmp_path / "out")
    files = sweeps.slurm_scripts(sw, out, python="/opt/py")
    assert files["cells.txt"].splitlines() == [c.id for c in sw.cells]
    arr = files["array.sbatch"].splitlines()
    slurm_dir = Path(out) / "sweeps" / "thr" / "slurm"
    for line in ("#!/bin/bash", "#SBATCH --array=0-3%2", "#SBATCH --partition=gpu", "#SBATCH --account=proj",
                 "#SBATCH --gpus-per-node=8", "#SBATCH --time=12:00:00", f"#SBATCH --output={slurm_dir}/logs/%A_%a.out",
                 "source .venv/bin/activate", f"cd {ROOT}",
                 f'CELL=$(sed -n "$((SLURM_ARRAY_TASK_ID + 1))p" {slurm_dir}/cells.txt)',
                 f'exec /opt/py -m autoif_lib.cli sweep {p.resolve()} --cell "$CELL" --no-figures --no-progress '
                 f"--outputs {out}"):
        assert line in arr, line
    assert arr[0] == "#!/bin/bash" and arr.index("set -euo pipefail") > arr.index("#SBATCH --array=0-3%2")
    col = files["collect.sbatch"].splitlines()
    assert f"exec /opt/py -m autoif_lib.cli sweep {p.resolve()} --collect --outputs {out}" in col
    # collecting is a small CPU job: its own resources, no GPU, the array's partition unless collect_partition
    assert col[:10] == ["#!/bin/bash", "#SBATCH --job-name=autoif-thr-collect",
                        f"#SBATCH --output={slurm_dir}/logs/collect_%j.out", "#SBATCH --cpus-per-task=2",
                        "#SBATCH --time=1:00:00", "#SBATCH --mem=8G", "#SBATCH --nodes=1", "#SBATCH --ntasks=1",
                        "#SBATCH --partition=gpu", "#SBATCH --account=proj"]
    assert not any("gpus" in line for line in col)
    assert "#SBATCH --cpus-per-task=16" in arr and "#SBATCH --mem=0" in arr   # the array keeps its own
    lines = []
    info = sweeps.write_slurm(sw, out, echo=lines.append)
    assert info["submitted"] is False and (slurm_dir / "array.sbatch").read_text() == files["array.sbatch"].replace(
        "/opt/py", __import__("sys").executable)
    assert any("--dependency=afterany:$ARRAY_ID" in line for line in lines)
    # two seeds: every stage's key differs between cells (the seed is a stage param), so no prefix job
    assert sweeps.shared_stages(sw) == [] and "prefix.sbatch" not in files
    assert not (slurm_dir / "prefix.sbatch").exists() and "--kill-on-invalid-dep=yes" not in files["array.sbatch"]
    assert "ARRAY_ID=$(sbatch --parsable " + str(slurm_dir / "array.sbatch") + ")" in "\n".join(lines)


def test_collect_job_resources_and_partition_are_its_own(tmp_path):
    p = write_sweep(tmp_path, GRID + "slurm: {partition: gpu, gpus: 4, collect_partition: cpu, collect_cpus: 1, "
                                     "collect_mem: 2G, collect_time: '0:20:00'}\n")
    files = sweeps.slurm_scripts(sweeps.load_sweep(p), str(tmp_path / "out"), python="/opt/py")
    col = files["collect.sbatch"].splitlines()
    assert col[3:9] == ["#SBATCH --cpus-per-task=1", "#SBATCH --time=0:20:00", "#SBATCH --mem=2G",
                        "#SBATCH --nodes=1", "#SBATCH --ntasks=1", "#SBATCH --partition=cpu"]
    arr = files["array.sbatch"].splitlines()
    assert "#SBATCH --partition=gpu" in arr and "#SBATCH --gpus-per-node=4" in arr


# ---------------------------------------------------------------------------
# Slurm: the environment the jobs run in
# ---------------------------------------------------------------------------

def test_default_setup_activates_a_venv_a_conda_env_or_the_interpreter_dir(tmp_path):
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "activate").write_text("")
    assert sweeps.default_setup(str(venv / "bin" / "python"), str(venv), "/usr", env={}) == [
        f"source {venv}/bin/activate", f"export PATH={venv}/bin:$PATH"]
    conda = tmp_path / "envs" / "autoif"
    (conda / "conda-meta").mkdir(parents=True)
    assert sweeps.default_setup(str(conda / "bin" / "python"), str(conda), str(conda),
                                env={"CONDA_EXE": "/opt/conda/bin/conda"}) == [
        'eval "$(/opt/conda/bin/conda shell.bash hook)"', f"conda activate {conda}", f"export PATH={conda}/bin:$PATH"]
    assert sweeps.default_setup("/usr/bin/python3", "/usr", "/usr", env={}) == ["export PATH=/usr/bin:$PATH"]
    odd = tmp_path / "my env"
    assert sweeps.default_setup(str(odd / "bin" / "python"), str(odd), str(odd), env={}) == [
        f"export PATH='{odd}/bin':$PATH"]


def test_default_setup_really_activates_a_venv(tmp_path):
    """The generated lines, run by bash with nothing of this environment on PATH, find the venv's python."""
    import subprocess
    import sys

    venv = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    lines = sweeps.default_setup(str(venv / "bin" / "python"), str(venv), sys.base_prefix, env={})
    script = "set -euo pipefail\nset +u\n" + "\n".join(lines) + '\nset -u\necho "$(command -v python) $VIRTUAL_ENV"\n'
    got = subprocess.run(["bash", "-c", script], env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
                         capture_output=True, text=True, check=True).stdout.split()
    assert got == [str(venv / "bin" / "python"), str(venv)]


def test_jobs_run_the_default_setup_unless_the_sweep_or_the_command_line_names_one(tmp_path):
    import shlex
    import sys

    from autoif_lib import cli

    out = str(tmp_path / "out")
    sw = sweeps.load_sweep(write_sweep(tmp_path, GRID))
    default = sweeps.default_setup()
    # the interpreter's own folder, not resolved: a venv's python is a link to the base interpreter
    assert default[-1] == f"export PATH={shlex.quote(str(Path(sys.executable).parent))}:$PATH"
    for name, text in sweeps.slurm_scripts(sw, out).items():
        if name.endswith(".sbatch"):
            lines = text.splitlines()
            i = lines.index(f"cd {ROOT}")
            assert lines[i - 1:i + len(default) + 3] == ["set -euo pipefail", f"cd {ROOT}", "set +u", *default,
                                                         "set -u"], name
    # the sweep file's setup replaces the default
    p = write_sweep(tmp_path, GRID + "slurm: {setup: 'module load cuda/12.4'}\n", name="with_setup.yaml")
    arr = sweeps.slurm_scripts(sweeps.load_sweep(p), out)["array.sbatch"].splitlines()
    i = arr.index(f"cd {ROOT}")
    assert arr[i + 1:i + 4] == ["set +u", "module load cuda/12.4", "set -u"] and default[-1] not in arr
    # and --slurm-setup replaces both
    setup = "module load cuda; source /opt/envs/autoif/bin/activate"
    assert cli.main(["sweep", str(p), "--slurm", "--outputs", out, "--slurm-setup", setup]) == 0
    slurm_dir = Path(out) / "sweeps" / "thr" / "slurm"
    for name in ("array.sbatch", "collect.sbatch"):
        lines = (slurm_dir / name).read_text().splitlines()
        i = lines.index(f"cd {ROOT}")
        assert lines[i + 1:i + 4] == ["set +u", setup, "set -u"], name
        assert "module load cuda/12.4" not in lines and default[-1] not in lines
    # an explicitly empty setup: nothing
    assert cli.main(["sweep", str(p), "--slurm", "--outputs", out, "--slurm-setup", ""]) == 0
    lines = (slurm_dir / "array.sbatch").read_text().splitlines()
    assert lines[lines.index(f"cd {ROOT}") + 1].startswith("CELL=$(")


# ---------------------------------------------------------------------------
# Slurm: the shared stages run once, before the array
# ---------------------------------------------------------------------------

def test_shared_prefix_of_shipped_sweeps():
    """A stage is shared when every cell resolves it to the same key; its keys chain its upstreams', so a
    grid over stage 06 shares 00-05, and a mixed sweep (two pipelines) shares nothing."""
    ab = ROOT / "params" / "ablations"
    sw = sweeps.load_sweep(ab / "autoif_response_threshold_cpu.yaml")
    order = sw.cells[0].load().pipeline.order
    assert sweeps.shared_stages(sw) == order[:order.index("06_verify_score")]
    keys = [c.load().stage_keys for c in sw.cells]
    assert all(k[s] == keys[0][s] for k in keys for s in order[:6]) and keys[0]["06_verify_score"] != keys[1]["06_verify_score"]
    assert sweeps.shared_stages(sweeps.load_sweep(ab / "spar_ablations.yaml")) == ["00_prompts", "01_init", "02_t1_sample"]
    assert sweeps.shared_stages(sweeps.load_sweep(ab / "autoif_vs_spar_cpu.yaml")) == []
    # the online-DPO sweep re-runs 10-11 only, and its first cell is `make effect` itself (same folders)
    od = sweeps.load_sweep(ab / "autoif_online_dpo_cpu.yaml")
    assert sweeps.shared_stages(od) == order[:order.index("10_online_dpo")]
    effect = load_recipe(ROOT / "params" / "autoif" / "cpu_effect.yaml", root=ROOT).stage_keys
    assert od.cells[0].load().stage_keys == effect and od.cells[1].load().stage_keys["10_online_dpo"] != effect["10_online_dpo"]


def test_prefix_job_builds_the_shared_stages_and_the_array_waits_for_it(tmp_path):
    sw = sweeps.load_sweep(ROOT / "params" / "ablations" / "autoif_response_threshold_cpu.yaml")
    out = str(tmp_path / "out")
    files = sweeps.slurm_scripts(sw, out, python="/opt/py")
    slurm_dir = Path(out) / "sweeps" / sw.name / "slurm"
    pre = files["prefix.sbatch"].splitlines()
    assert pre[:9] == ["#!/bin/bash", f"#SBATCH --job-name=autoif-{sw.name}-prefix",
                       f"#SBATCH --output={slurm_dir}/logs/prefix_%j.out", "#SBATCH --cpus-per-task=16",
                       "#SBATCH --time=24:00:00", "#SBATCH --mem=0", "#SBATCH --nodes=1", "#SBATCH --ntasks=1",
                       "#SBATCH --gpus-per-node=8"]                       # the array's resources: it runs cell stages
    assert pre[-1] == f"exec /opt/py -m autoif_lib.cli sweep {sw.path.resolve()} --prefix --no-progress --outputs {out}"
    assert "#SBATCH --kill-on-invalid-dep=yes" in files["array.sbatch"].splitlines()  # a failed prefix cancels it
    lines = []
    info = sweeps.write_slurm(sw, out, echo=lines.append)
    assert info["shared"] == sweeps.shared_stages(sw)
    assert lines[-1].splitlines()[1:] == [
        f"  PREFIX_ID=$(sbatch --parsable {slurm_dir}/prefix.sbatch)",
        f"  ARRAY_ID=$(sbatch --parsable --dependency=afterok:$PREFIX_ID {slurm_dir}/array.sbatch)",
        f"  sbatch --dependency=afterany:$ARRAY_ID {slurm_dir}/collect.sbatch"]
    # what the prefix job runs: exactly the shared stages, through the first cell's recipe
    calls = []
    sweeps.run_prefix(sw, out, echo=lambda *_: None,
                      run=lambda path, **kw: calls.append((path, kw["stages"], kw["outputs"], kw["overrides"])) or {})
    assert calls == [(sw.cells[0].recipe_path, "00,01,02,03,04,05", out, sw.cells[0].overrides)]
    from autoif_lib.runner import select_stages
    assert select_stages(calls[0][1], sw.cells[0].load().pipeline.order) == sweeps.shared_stages(sw)


# ---------------------------------------------------------------------------
# what one node cannot run is refused before anything starts
# ---------------------------------------------------------------------------

SPAR_ABL = ROOT / "params" / "ablations" / "spar_ablations.yaml"


def test_gpu_sweep_that_does_not_fit_the_gpus_per_job_is_refused(tmp_path):
    sw = sweeps.load_sweep(SPAR_ABL)
    with pytest.raises(ParamsError) as e:
        sweeps.run_sweep(sw, str(tmp_path / "out"), jobs=4, gpus_per_job=2, echo=lambda *_: None,
                         run=lambda *a, **k: pytest.fail("a cell started"))
    assert str(e.value) == (
        f"{SPAR_ABL}: cell 'spar@s0': stages.01_init.num_gpus needs 8 GPUs (training ranks on the node), but "
        "--jobs 4 --gpus-per-job 2 gives each cell 2; give each cell 8 GPUs or lower the setting")
    assert not (tmp_path / "out").exists()                               # nothing written, nothing started
    # vLLM engines count tensor_parallel_size x data_parallel_size
    p = write_sweep(tmp_path, f"sweep: x\nrecipe: {SPAR_ABL.parent / '../spar/paper_llama3_8b.yaml'}\n"
                              "variants: {two: {common.num_gpus: 2}}\n")
    with pytest.raises(ParamsError, match=r"cell 'two@s0': stages\.02_t1_sample\.generation needs 8 GPUs \(vLLM "
                                          r"tensor_parallel_size 1 x data_parallel_size 8\), but --jobs 2 "
                                          r"--gpus-per-job 2 gives each cell 2"):
        sweeps.run_sweep(sweeps.load_sweep(p), str(tmp_path / "out"), jobs=2, gpus_per_job=2, echo=lambda *_: None)
    # 8 GPUs per cell fit; --slurm checks its per-task GPUs the same way
    sweeps.check_placement(sw, 8, "--jobs 1 --gpus-per-job 8")
    sweeps.slurm_scripts(sw, str(tmp_path / "out"))                    # slurm: {gpus: 8}
    with pytest.raises(ParamsError, match=r"stages\.01_init\.num_gpus needs 8 GPUs .*but --slurm \(4 GPUs per "
                                          r"array task\) gives each cell 4"):
        sweeps.slurm_scripts(sw, str(tmp_path / "out"), overrides={"gpus": 4})


def test_cli_refuses_before_writing_scripts(tmp_path, capsys):
    from autoif_lib import cli

    out = tmp_path / "out"
    assert cli.main(["sweep", str(SPAR_ABL), "--slurm", "--gpus-per-job", "4", "--outputs", str(out)]) == 2
    assert "params error: " in capsys.readouterr().err and not out.exists()
    assert cli.main(["sweep", str(SPAR_ABL), "--jobs", "2", "--gpus-per-job", "4", "--outputs", str(out)]) == 2
    assert not out.exists()


def test_multi_node_recipes_are_refused_for_one_node_scripts_and_jobs(tmp_path):
    recipe = ROOT / "params" / "autoif" / "paper_llama3_70b_self_alignment.yaml"
    p = write_sweep(tmp_path, f"sweep: big\nrecipe: {recipe}\ngrid: {{stages.06_verify_score.pass_threshold: [0.5, 0.8]}}\n")
    sw = sweeps.load_sweep(p)
    with pytest.raises(ParamsError) as e:
        sweeps.slurm_scripts(sw, str(tmp_path / "out"))
    assert str(e.value) == (
        f"{p}: cell 'pass_threshold=0.5@s0': stages.08_sft.num_machines is 8, but --slurm (8 GPUs per array "
        "task) runs each cell on one node (the job scripts ask for --nodes=1); run a multi-node recipe with "
        "`autoif run` in an allocation of 8 nodes, or set num_machines: 1")
    with pytest.raises(ParamsError, match=r"stages\.08_sft\.num_machines is 8, but --jobs 2 --gpus-per-job 0 runs "
                                          r"each cell on one node"):
        sweeps.run_sweep(sw, str(tmp_path / "out"), jobs=2, echo=lambda *_: None)
    # one machine: accepted
    p1 = write_sweep(tmp_path, p.read_text() + "variants: {one: {common.num_machines: 1}}\n", name="one.yaml")
    sweeps.slurm_scripts(sweeps.load_sweep(p1), str(tmp_path / "out"))


def test_cell_mode_runs_exactly_that_cell(tmp_path):
    sw = sweeps.load_sweep(write_sweep(tmp_path, GRID))
    out = str(tmp_path / "out")
    fake = FakeRunner()
    rec = sweeps.run_cell(sw, sw.cell("pass_threshold=0.8@s1"), out, echo=lambda *_: None, run=fake)
    assert rec["status"] == "done" and len(fake.calls) == 1
    assert [s["state"] for s in sweeps.status(sw, out)] == ["pending", "pending", "pending", "done"]


def test_gpu_sets_are_disjoint_and_checked():
    assert sweeps.gpu_sets(2, 2, ["0", "1", "2", "3"]) == [["0", "1"], ["2", "3"]]
    assert sweeps.gpu_sets(3, 0, []) == [[], [], []]
    with pytest.raises(ParamsError, match="needs 6 GPUs; 4 visible"):
        sweeps.gpu_sets(3, 2, ["0", "1", "2", "3"])


def test_stage_lock_makes_a_second_run_wait(tmp_path):
    d = tmp_path / "store" / "autoif" / "06" / "abc"
    events = []

    def other():
        with stage_lock(d, on_wait=lambda: events.append("waiting")):
            events.append("acquired")

    with stage_lock(d):
        t = threading.Thread(target=other)
        t.start()
        time.sleep(0.3)
        assert events == ["waiting"]           # blocked while the first holds it
        events.append("released")
    t.join(5)
    assert events == ["waiting", "released", "acquired"]


def test_sweep_draws_its_default_figures_and_tables(tmp_path):
    sw = sweeps.load_sweep(write_sweep(tmp_path, GRID))
    out = str(tmp_path / "out")
    res = sweeps.run_sweep(sw, out, echo=lambda *_: None, run=FakeRunner(), figures=True)
    figs = Path(res["results"]).parent / "figures"
    names = sorted(p.name for p in figs.iterdir())
    # a one-key grid: a curve per table metric with a factor ('07_export.n_sft' is a stage metric: no curve)
    assert names == ["curve_heldout_pass_rate.pdf", "curve_heldout_pass_rate.png", "curve_prompt_strict.pdf",
                     "curve_prompt_strict.png", "table.md", "table.tex"]
    md = (figs / "table.md").read_text().splitlines()
    # mean over seeds 0 and 1 of prompt_strict at 0.8 (40 %, 40 %): s.e. over seeds 0.0
    assert "| pass_threshold=0.8 | online_dpo | 40.0 ± 0.0 |" in "\n".join(md)


def test_collect_rereads_finished_runs(tmp_path):
    sw = sweeps.load_sweep(write_sweep(tmp_path, GRID))
    out = str(tmp_path / "out")
    sweeps.run_sweep(sw, out, echo=lambda *_: None, run=FakeRunner(), figures=False)
    run_dir = Path(sweeps.cell_record(sw.dir(out), sw.cells[0])["run_dir"])
    summary = run_dir / "11_evaluate" / "ifeval_base_summary.json"
    io.write_json(summary, {**io.read_json(summary), "prompt_strict": 0.75})  # a fixed collector reads anew
    assert sweeps.recollect(sw, out, echo=lambda *_: None) == 4
    df = results.read_table(sweeps.write_results(sw, out))
    ps = df[(df.metric == "prompt_strict") & (df.checkpoint == "base")].set_index(["variant", "seed"])
    assert ps.loc[("pass_threshold=0.5", 0), "value"] == pytest.approx(75.0)
    assert ps.loc[("pass_threshold=0.5", 1), "value"] == pytest.approx(25.0)
