"""The paper's Table 3 ablation switches: 03 ``preset: none`` (w/o cross-verification),
04 ``backtranslate: false`` (w/o back-translation), 06 ``run_judge: false`` (w/o query quality)."""

from __future__ import annotations

import ast
import inspect
import json
import re
from types import SimpleNamespace

import pytest

from autoif_lib import io, scoring
from autoif_lib.autoif import backtranslate, crossval
from autoif_lib.autoif.crossval import PRESETS, Rules, cross_validate
from autoif_lib.autoif.stages import BacktranslateParams, CrossValidateParams, VerifyScoreParams
from autoif_lib.params import ParamsError, build

from conftest import FIGURE_CALL, ROOT


def V(s):
    """'T' pass, 'F' fail, 'E' exception in evaluate, 'S' syntax error, 'L' module body failed while loading."""
    status = {"T": "pass", "F": "fail", "E": "exception", "S": "syntax_error", "L": "exception"}[s]
    detail = "at module level: NameError: x" if s == "L" else ""
    return SimpleNamespace(status=status, ok=status == "pass", detail=detail)


def M(*rows):
    return [[V(c) for c in row] for row in rows]


def fns(n):
    return [{"src": f"def evaluate(r):\n    return {i}", "origin": "model"} for i in range(n)]


def cases(*labels):
    return [{"input": f"case {i}", "output": l} for i, l in enumerate(labels)]


# --------------------------------------------------------------------------- 03 preset: none

def test_none_preset_keeps_every_loadable_function_and_every_case():
    labels = (True, True, False, False)
    m = M("TTFF",   # f0 perfect
          "FFTT",   # f1 always wrong: accuracy 0, kept anyway
          "EEEE",   # f2 loads, raises in evaluate: a function that runs, accuracy 0, kept
          "SSSS",   # f3 syntax error: cannot run, dropped
          "LLLL",   # f4 module body fails while loading: dropped
          "TFTF")   # f5 half right
    functions = fns(6)
    res = cross_validate(functions, cases(*labels), m, PRESETS["none"])
    assert res["kept"] and res["reason"] is None and res["n_compiled"] == 4
    assert [f["src"] for f in res["functions"]] == [functions[i]["src"] for i in (0, 1, 2, 5)]
    # accuracy recorded over all cases (04 ranks by it); it filters nothing
    assert [f["accuracy"] for f in res["functions"]] == [1.0, 0.0, 0.0, 0.5]
    # every case kept, though none has more than half of the functions agreeing
    assert [c["input"] for c in res["cases"]] == [f"case {j}" for j in range(4)]
    assert [c["agreement"] for c in res["cases"]] == [0.5, 0.25, 0.25, 0.5]
    assert res["fn_rejects"] == {"syntax_error": 1, "load_error": 1} and res["case_rejects"] == {}
    # the paper preset on the same matrix filters (contrast)
    paper = cross_validate(functions, cases(*labels), m, PRESETS["paper"])
    assert not paper["kept"] and paper["reason"] == "no_case_survives"


def test_none_preset_still_needs_a_loadable_function_and_a_case():
    res = cross_validate(fns(2), cases(True), M("S", "L"), PRESETS["none"])
    assert not res["kept"] and res["reason"] == "no_function_compiles"
    assert res["fn_rejects"] == {"syntax_error": 1, "load_error": 1}
    res = cross_validate(fns(1), [], [[]], PRESETS["none"])
    assert not res["kept"] and res["reason"] == "too_few_cases"
    functions = fns(2)
    functions[0]["compile_error"] = "syntax_error: line 1"  # the sandbox pre-check's verdict
    res = cross_validate(functions, cases(False), [[], [V("T")]], PRESETS["none"])
    assert res["kept"] and [f["src"] for f in res["functions"]] == [functions[1]["src"]]
    assert res["fn_rejects"] == {"syntax_error": 1} and [c["agreement"] for c in res["cases"]] == [0.0]


def test_none_preset_is_rules_values_and_a_param():
    off = PRESETS["none"]
    assert off == Rules(case_rule="always", fn_accuracy=0.0, fn_accuracy_inclusive=True)
    assert (off.min_functions_before, off.min_cases_before, off.min_functions_after, off.min_cases_after) == (1, 1, 1, 1)
    assert crossval.rules_from_params(build(CrossValidateParams, {"preset": "none"})) == off
    custom = build(CrossValidateParams, {"preset": "custom", "case_rule": "always", "fn_accuracy": 0.8})
    assert crossval.rules_from_params(custom) == Rules(case_rule="always", fn_accuracy=0.8)
    with pytest.raises(ParamsError, match="case_rule: only used with preset: custom"):
        build(CrossValidateParams, {"preset": "none", "case_rule": "any"}, "stages.03_cross_validate")
    with pytest.raises(ParamsError):
        build(CrossValidateParams, {"preset": "nothing"}, "stages.03_cross_validate")
    # the name reads as a string in plain YAML (a bare `off` would be YAML 1.1's false)
    import yaml

    assert build(CrossValidateParams, yaml.safe_load("preset: none")).preset == "none"
    with pytest.raises(ValueError, match="case_rule"):
        Rules(case_rule="all")


def test_none_preset_through_the_real_sandbox():
    from autoif_lib.sandbox import precheck
    from autoif_lib.sandbox.host import Sandbox, SandboxConfig

    good = "def evaluate(response):\n    return response == response.lower()\n"
    wrong = "def evaluate(response):\n    return response != response.lower()\n"
    syntax = "def evaluate(response:\n    return True\n"
    load_crash = "LIMIT = int('ten')\n\ndef evaluate(response):\n    return True\n"
    cands = [{"id": "a", "instruction": "Answer in all lowercase letters.",
              "functions": [{"src": s, "origin": "model"} for s in (good, wrong, syntax, load_crash)],
              "cases": [{"input": "abc", "output": True}, {"input": "ABC", "output": False},
                        {"input": "Abc", "output": True}]}]   # a mislabelled case, kept under off
    records, _ = crossval.prepare(cands, precheck)
    assert records[0]["functions"][2]["compile_error"].startswith("syntax_error")
    cfg = SandboxConfig(timeout_s=1.0, memory_mb=256, workers=2, heavy_modules=(), allowed_imports=())
    with Sandbox(cfg) as sb:
        matrix = crossval.run_matrix(records, sb.verdicts)
    res = crossval.cross_validate_all(records, matrix, PRESETS["none"])
    (kept,) = res["kept"]
    assert [(f["src"], f["accuracy"]) for f in kept["functions"]] == [(good, round(2 / 3, 4)), (wrong, round(1 / 3, 4))]
    assert [c["input"] for c in kept["cases"]] == ["abc", "ABC", "Abc"]
    assert res["function_rejects"] == {"syntax_error": 1, "load_error": 1} and res["case_rejects"] == {}
    paper = crossval.cross_validate_all(records, matrix, PRESETS["paper"])
    assert paper["instruction_rejects"] == {"no_case_survives": 1}  # 1 of 2 agrees on every case: not > 0.5


# --------------------------------------------------------------------------- 04 backtranslate: false

RECORDS = [{"id": "a", "instruction": "Answer in all lowercase letters.", "origin": "seed",
            "functions": [{"src": "def evaluate(r):\n    return r.islower()", "origin": "model", "accuracy": 1.0}],
            "cases": [{"input": "abc", "output": True, "agreement": 1.0}]},
           {"id": "b", "instruction": "Écris « trois » mots.", "origin": "augmented",
            "functions": [{"src": "def evaluate(r):\n    return len(r.split()) == 3", "origin": "model", "accuracy": 0.75}],
            "cases": [{"input": "un deux trois", "output": True, "agreement": 0.5}]}]


def test_passthrough_keeps_records_byte_identical_and_takes_no_model(tmp_path):
    assert list(inspect.signature(backtranslate.passthrough).parameters) == ["records"]
    src = io.write_jsonl(tmp_path / "kept.jsonl", RECORDS)          # what 03 writes
    kept = io.read_jsonl(src)                                      # what 04 reads
    res = backtranslate.passthrough(kept)
    assert res["rejected"] == [] and res["rejects"] == {} and res["labels"] == {} and res["skipped"]
    assert all(a is b for a, b in zip(res["kept"], kept)) and len(res["kept"]) == len(kept)
    out = io.write_jsonl(tmp_path / "instructions.jsonl", res["kept"])
    assert out.read_bytes() == src.read_bytes()
    assert io.write_jsonl(tmp_path / "rejected.jsonl", res["rejected"]).read_bytes() == b""
    f = backtranslate.funnel(kept, [], res)
    assert [(s["in"], s["out"], s["dropped"]) for s in f.steps] == [(2, 2, 0)] and "skipped" in f.steps[0]["step"]
    p = build(BacktranslateParams, {"backtranslate": False})
    m = backtranslate.metrics(kept, [], res, None, p)
    assert m["skipped"] and m["backtranslate"] is False and m["n_in"] == m["n_kept"] == 2
    assert m["n_backtranslations"] == 0 and m["labels"] == {} and m["rejects"] == {}
    assert m["nli_backend"] is None and m["kept_by_origin"] == {"augmented": 1, "seed": 1}


def test_backtranslate_param_default_and_metrics_when_on():
    assert build(BacktranslateParams, {}).backtranslate is True
    p = build(BacktranslateParams, {"nli_backend": "llm", "nli_model": ""})
    judge = SimpleNamespace(name="llm", mode="generative")
    backs = [["Write in lowercase only."], []]
    res = backtranslate.apply_filter(RECORDS, backs, [["contradiction"], []])
    m = backtranslate.metrics(RECORDS, [(backs[0], None), ([], "no_backtranslation")], res, judge, p)
    assert m["backtranslate"] is True and not m["skipped"] and m["nli_backend"] == "llm" and m["nli_mode"] == "generative"
    assert m["nli_model"] == p.supervisor.model and m["n_backtranslations"] == 1 and m["unparsed_backtranslations"] == 1
    assert m["n_kept"] == 1 and m["rejects"] == {"nli_contradiction": 1}


def _run_notebook_cells(stage, monkeypatch, overrides, reads, **ctx_attrs):
    """Execute a stage notebook's code cells in-process (no kernel) against a fake stage context.

    ``reads``: upstream stage -> records. Model access fails the test unless ``generator`` is given
    (and, for 04, ``make_judge``). Returns (the value of each figure cell, what was written, the metrics)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import nbformat

    from autoif_lib import runs
    from autoif_lib.autoif import nli

    written, finished = {}, {}
    make_judge = ctx_attrs.pop("make_judge", lambda *a, **k: pytest.fail("no NLI judge may be made"))

    def open_stage(qualified, namespace):
        pipe, name = runs.split_stage(qualified, namespace)
        params = runs.stage_params_from(pipe, name, {**namespace, **overrides}, ROOT)
        ctx = dict(p=params, read_jsonl=lambda up, _name: [json.loads(json.dumps(r)) for r in reads[up]],
                   generator=lambda spec: pytest.fail("no model may be loaded"),
                   write_jsonl=lambda name, recs: written.__setitem__(name, list(recs)),
                   finish=lambda m: finished.update(json.loads(json.dumps(m))))
        return SimpleNamespace(**{**ctx, **ctx_attrs})

    monkeypatch.setattr(runs, "open_stage", open_stage)
    monkeypatch.setattr(nli, "make_judge", make_judge)
    path = ROOT / "notebooks" / "autoif" / f"{stage}.ipynb"
    nb = nbformat.read(str(path), as_version=4)
    ns, figures = {}, []
    for cell in (c for c in nb.cells if c.cell_type == "code"):
        tree = ast.parse(cell.source)
        last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
        exec(compile(tree, str(path), "exec"), ns)
        value = eval(compile(ast.Expression(last.value), str(path), "eval"), ns) if last else None
        if re.search(FIGURE_CALL, cell.source):
            figures.append(value)
        assert not plt.get_fignums()  # the figure cell's value is its only figure
    return figures, written, finished


def test_notebook_04_with_backtranslate_false_makes_no_model_call(monkeypatch):
    from matplotlib.figure import Figure

    figures, written, metrics = _run_notebook_cells("04_backtranslate", monkeypatch, {"backtranslate": False},
                                                    {"03_cross_validate": RECORDS})
    assert len(figures) == 1 and isinstance(figures[0], Figure) and "skipped" in figures[0].axes[0].get_title()
    assert written["instructions.jsonl"] == RECORDS and written["rejected.jsonl"] == []
    assert metrics["skipped"] and metrics["n_in"] == metrics["n_kept"] == 2 and metrics["n_backtranslations"] == 0
    assert [(s["in"], s["out"]) for s in metrics["funnel"]["steps"]] == [(2, 2)]


def test_notebook_04_with_backtranslate_true_still_filters(monkeypatch):
    from matplotlib.figure import Figure

    calls = []

    class Gen:
        def generate(self, requests, sp, desc=""):
            calls.append(len(requests))
            return [['["Write only in lowercase letters please."]'] for _ in requests]

    class Judge:
        name, mode = "llm", "generative"

        def predict(self, pairs):
            return ["contradiction" if "trois" in p else "entailment" for p, _ in pairs]

    figures, written, metrics = _run_notebook_cells(
        "04_backtranslate", monkeypatch, {"backtranslate": True, "nli_backend": "llm", "nli_model": ""},
        {"03_cross_validate": RECORDS}, generator=lambda spec: Gen(), make_judge=lambda *a, **k: Judge())
    assert calls == [2] and len(figures) == 1 and isinstance(figures[0], Figure)
    assert [r["id"] for r in written["instructions.jsonl"]] == ["a"]
    assert [r["back_translations"][0]["nli"] for r in written["instructions.jsonl"]] == ["entailment"]
    assert [(r["id"], r["reject"]) for r in written["rejected.jsonl"]] == [("b", "nli_contradiction")]
    assert metrics["backtranslate"] is True and metrics["n_backtranslations"] == 2 and metrics["nli_backend"] == "llm"
    assert metrics["labels"] == {"entailment": 1, "contradiction": 1} and len(metrics["funnel"]["steps"]) == 2


# --------------------------------------------------------------------------- 06 run_judge: false

def test_run_judge_false_keeps_responses_on_pass_rate_alone(monkeypatch):
    from matplotlib.figure import Figure

    from autoif_lib.autoif import responses

    assert build(VerifyScoreParams, {"run_judge": False}).run_judge is False
    pairs = [{"id": "a", "instruction": "Answer in all lowercase letters.", "query": "Say hi.", "origin": "seed",
              "responses": ["hi there", "Hi There"]}]
    instructions = [dict(RECORDS[0], functions=[{"src": "def evaluate(r):\n    return r.islower()"}])]
    fake_scored = [{"id": "a", "response": "hi there", "pass_rate": 1.0, "origin": "seed"},
                   {"id": "a", "response": "Hi There", "pass_rate": 0.0, "origin": "seed"}]

    class Box:
        isolation, verdicts = {"level": "fake"}, None

        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False

    monkeypatch.setattr(scoring, "pass_rates", lambda p, f, runner: [dict(r) for r in fake_scored])
    monkeypatch.setattr(responses, "judge_requests", lambda *a: pytest.fail("run_judge false: no judge prompts"))
    figures, written, finished = _run_notebook_cells(
        "06_verify_score", monkeypatch, {"run_judge": False},
        {"05_responses": pairs, "04_backtranslate": instructions}, sandbox=lambda: Box())
    assert all(isinstance(f, Figure) for f in figures) and len(figures) == 2
    # kept on pass rate alone (> 0.5), no score attached, no judge step in the funnel
    assert [r["response"] for r in written["kept.jsonl"]] == ["hi there"]
    assert all("score" not in r for r in written["kept.jsonl"])
    assert finished["n_passed"] == finished["n_kept"] == 1 and finished["judge_rejects"] == {}
    assert [s["step"] for s in finished["funnel"]["steps"]] == ["pairs × K → responses", "responses → pass rate > 0.5"]
