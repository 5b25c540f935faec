"""Cross-validation rules on hand-made verdict matrices: every threshold, both presets."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from autoif_lib.autoif import crossval
from autoif_lib.params import ParamsError, build
from autoif_lib.autoif.crossval import PRESETS, Rules, cross_validate
from autoif_lib.autoif.stages import CrossValidateParams


def V(s):
    """'T' pass, 'F' fail, 'E' exception, 'X' timeout, 'S' syntax error."""
    status = {"T": "pass", "F": "fail", "E": "exception", "X": "timeout", "S": "syntax_error"}[s]
    return SimpleNamespace(status=status, ok=status == "pass")


def M(*rows):
    return [[V(c) for c in row] for row in rows]


def fns(n, origin="model"):
    return [{"src": f"def evaluate(r):\n    return {i}", "origin": origin} for i in range(n)]


def cases(*labels):
    return [{"input": f"case {i}", "output": l} for i, l in enumerate(labels)]


def test_paper_majority_and_accuracy():
    # 3 functions x 4 cases (labels T T F F)
    m = M("TTFF",   # perfect
          "TTFT",   # 3/4 on all cases
          "FFTT")   # always wrong
    res = cross_validate(fns(3), cases(True, True, False, False), m, PRESETS["paper"])
    # case agreement: c0 2/3, c1 2/3, c2 2/3, c3 1/3 -> c3 dropped (not > 0.5)
    assert [c["input"] for c in res["cases"]] == ["case 0", "case 1", "case 2"]
    # accuracy on kept cases: f0 1.0, f1 1.0, f2 0.0
    assert [f["accuracy"] for f in res["functions"]] == [1.0, 1.0]
    assert res["kept"] and res["fn_rejects"]["low_accuracy"] == 1


def test_case_agreement_is_strict_greater():
    # 2 functions, case agreed by exactly half: 0.5 is not > 0.5
    res = cross_validate(fns(2), cases(True), M("T", "F"), PRESETS["paper"])
    assert not res["kept"] and res["reason"] == "no_case_survives"
    # 'any' rule keeps it
    res = cross_validate(fns(2), cases(True), M("T", "F"), Rules(case_rule="any"))
    assert len(res["cases"]) == 1


def test_function_accuracy_threshold_inclusive_vs_strict():
    # f0 acc 1.0; f1 acc exactly 0.5 on the kept cases
    m = M("TTTT", "TTFF", "TTTT")
    c = cases(True, True, True, True)
    strict = cross_validate(fns(3), c, m, Rules())  # > 0.5
    assert len(strict["functions"]) == 2
    inclusive = cross_validate(fns(3), c, m, Rules(fn_accuracy_inclusive=True))  # >= 0.5
    assert len(inclusive["functions"]) == 3
    ref = cross_validate(fns(3), c, m, Rules(fn_accuracy=0.8, fn_accuracy_inclusive=True))
    assert [f["accuracy"] for f in ref["functions"]] == [1.0, 1.0]


def test_errors_count_as_failures():
    m = M("TE", "TX", "TT")
    res = cross_validate(fns(3), cases(True, True), m, PRESETS["paper"])
    # case 1: only f2 agrees (1/3) -> dropped; on case 0 all agree
    assert [c["input"] for c in res["cases"]] == ["case 0"]
    assert len(res["functions"]) == 3


def test_compile_failures_are_dropped_first():
    functions = fns(3)
    functions[0]["compile_error"] = "forbidden_import: os"
    m = [[], *M("TF", "TF")]
    res = cross_validate(functions, cases(True, False), m, PRESETS["paper"])
    assert res["kept"] and res["n_compiled"] == 2 and res["fn_rejects"]["forbidden_import"] == 1
    # all rows syntax errors from the sandbox: no function compiles
    res = cross_validate(fns(2), cases(True), M("S", "S"), PRESETS["paper"])
    assert not res["kept"] and res["reason"] == "no_function_compiles"


def test_reference_preset_gates_and_any_rule():
    ref = PRESETS["reference"]
    # only 2 functions: below the 3-function gate
    res = cross_validate(fns(2), cases(*[True] * 10), M("T" * 10, "T" * 10), ref)
    assert res["reason"] == "too_few_functions"
    # 3 functions but 9 cases: below the 10-case gate
    res = cross_validate(fns(3), cases(*[True] * 9), M("T" * 9, "T" * 9, "T" * 9), ref)
    assert res["reason"] == "too_few_cases"
    # 10 cases; a case agreed by one function only survives ('any'); acc >= 0.8 keeps f1 at exactly 0.8
    m = M("TTTTTTTTTT", "TTTTTTTTFF", "FFFFFFFFFF")
    res = cross_validate(fns(3), cases(*[True] * 10), m, ref)
    assert len(res["cases"]) == 10
    assert [f["accuracy"] for f in res["functions"]] == [1.0, 0.8]
    # the paper preset on the same matrix keeps cases 0-7 only (2/3 > 0.5); cases 8-9 at 1/3
    res = cross_validate(fns(3), cases(*[True] * 10), m, PRESETS["paper"])
    assert len(res["cases"]) == 8 and [f["accuracy"] for f in res["functions"]] == [1.0, 1.0]


def test_min_after_thresholds():
    m = M("TT", "TT")
    res = cross_validate(fns(2), cases(True, True), m, Rules(min_functions_after=3))
    assert not res["kept"] and res["reason"] == "too_few_functions_after"
    res = cross_validate(fns(2), cases(True, True), m, Rules(min_cases_after=3))
    assert not res["kept"] and res["reason"] == "too_few_cases_after"


def test_dedup_functions_by_ast_and_cases_by_input():
    a = {"src": "def evaluate(r):\n    return True  # yes", "origin": "model"}
    b = {"src": "def evaluate(r):\n\n    return True\n", "origin": "reference"}
    c = {"src": "def evaluate(r):\n    return False", "origin": "model"}
    out, n = crossval.dedup_functions([a, b, c])
    assert n == 1 and [f["origin"] for f in out] == ["reference", "model"]
    cs = [{"input": "x", "output": True}, {"input": "x", "output": True},
          {"input": "y", "output": True}, {"input": "y", "output": False}, {"input": "z", "output": False}]
    out, rej = crossval.dedup_cases(cs)
    assert [c["input"] for c in out] == ["x", "z"]
    assert rej == {"duplicate_case": 1, "conflicting_labels": 2}


def test_presets_via_params():
    assert crossval.rules_from_params(build(CrossValidateParams, {"preset": "reference"})) == PRESETS["reference"]
    custom = build(CrossValidateParams, {"preset": "custom", "fn_accuracy": 0.9, "case_rule": "any"})
    r = crossval.rules_from_params(custom)
    assert r.fn_accuracy == 0.9 and r.case_rule == "any" and r.min_cases_before == 1
    with pytest.raises(ParamsError, match="fn_accuracy: only used with preset: custom"):
        build(CrossValidateParams, {"preset": "paper", "fn_accuracy": 0.9}, "stages.03_cross_validate")


def test_orchestration_with_fake_runner():
    cands = [
        {"id": "a", "instruction": "lower case", "functions": [
            {"src": "def evaluate(r):\n    return r.islower()", "origin": "model"},
            {"src": "import os\ndef evaluate(r):\n    return True", "origin": "model"}],
         "cases": [{"input": "abc", "output": True}, {"input": "ABC", "output": False}]},
        {"id": "b", "instruction": "no cases", "functions": [{"src": "def evaluate(r):\n    return True"}], "cases": []},
    ]
    precheck = lambda src: "forbidden_import: os" if "import os" in src else None  # noqa: E731

    def runner(functions, inputs):
        out = []
        for src, inp in zip(functions, inputs):
            ns = {}
            exec(src, ns)
            out.append([V("T" if ns["evaluate"](x) else "F") for x in inp])
        return out

    records, counts = crossval.prepare(cands, precheck)
    matrix = crossval.run_matrix(records, runner)
    assert matrix[0][1] == [] and len(matrix[0][0]) == 2
    res = crossval.cross_validate_all(records, matrix, PRESETS["paper"])
    assert [r["id"] for r in res["kept"]] == ["a"] and res["instruction_rejects"] == {"too_few_cases": 1}
    assert res["function_rejects"]["forbidden_import"] == 1
    q = crossval.verifier_quality(records, [{"seed_id": "a", "response": "hi", "label": True},
                                            {"seed_id": "a", "response": "Hi", "label": True}], runner, kept=res["kept"])
    assert [(r["compiles"], r["agreement"], r["kept"]) for r in q] == [(True, 0.5, True), (False, 0.0, False)]
    s = crossval.quality_summary(q)
    assert s["mean_agreement_all"] == 0.25 and s["mean_agreement_kept"] == 0.5 and s["compile_rate"] == 0.5
