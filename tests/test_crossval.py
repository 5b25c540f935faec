"""Cross-validation rules on hand-made verdict matrices: every threshold, both presets."""

from __future__ import annotations

from dataclasses import replace
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
    # accuracy over all cases (paper): f0 1.0, f1 0.75, f2 0.0
    assert [f["accuracy"] for f in res["functions"]] == [1.0, 0.75]
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
    # over all cases f0 and f1 are at 1/2 (the error counts as wrong): not > 0.5
    assert [f["accuracy"] for f in res["functions"]] == [1.0] and res["fn_rejects"]["low_accuracy"] == 2
    # scored on the kept case only, all three are at 1.0
    res = cross_validate(fns(3), cases(True, True), m, Rules(fn_accuracy_on="kept_cases"))
    assert [f["accuracy"] for f in res["functions"]] == [1.0, 1.0, 1.0]


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
    # the paper preset on the same matrix keeps cases 0-7 only (2/3 > 0.5); cases 8-9 at 1/3;
    # f1 scores 0.8 over all 10 cases (it would be 1.0 on the 8 kept ones)
    res = cross_validate(fns(3), cases(*[True] * 10), m, PRESETS["paper"])
    assert len(res["cases"]) == 8 and [f["accuracy"] for f in res["functions"]] == [1.0, 0.8]


def test_paper_scores_functions_on_all_cases_reference_on_kept_cases():
    # Paper §3.2: a function is kept when its accuracy over ALL test cases is > 0.5.
    # f1 and f2 agree with cases 0-4 and are wrong on 5-9: exactly 0.5 over all cases.
    m = M("TTTTTTTTTT",
          "TTTTTFFFFF",
          "TTTTTFFFFF",
          "FFFFFFFFFF")
    c = cases(*[True] * 10)
    # cases 0-4: 3/4 agree (kept); cases 5-9: 1/4 (dropped). On the kept cases f1, f2 are at 1.0.
    paper = cross_validate(fns(4), c, m, PRESETS["paper"])
    assert [x["input"] for x in paper["cases"]] == [f"case {i}" for i in range(5)]
    assert [(f["src"], f["accuracy"]) for f in paper["functions"]] == [(fns(4)[0]["src"], 1.0)]
    assert paper["kept"] and paper["fn_rejects"] == {"low_accuracy": 3}
    # the same thresholds scored on the kept cases would keep f1 and f2, recorded at 1.0
    kept_scored = cross_validate(fns(4), c, m, replace(PRESETS["paper"], fn_accuracy_on="kept_cases"))
    assert [(f["src"], f["accuracy"]) for f in kept_scored["functions"]] == [(f["src"], 1.0) for f in fns(3)]

    # Released code: score on the kept cases. Cases 0-5 True, 6-11 False; f0-f2 say True everywhere
    # (0.5 over all 12 cases, 6/6 = 1.0 on the kept ones), f3 raises everywhere. 4 functions and
    # 12 cases pass the reference gate; 'any' keeps 0-5 and drops 6-11 (nobody agrees).
    m2 = M("T" * 12, "T" * 12, "T" * 12, "E" * 12)
    c2 = cases(*[True] * 6, *[False] * 6)
    ref = cross_validate(fns(4), c2, m2, PRESETS["reference"])
    assert ref["kept"] and [x["input"] for x in ref["cases"]] == [f"case {i}" for i in range(6)]
    assert [(f["src"], f["accuracy"]) for f in ref["functions"]] == [(f["src"], 1.0) for f in fns(3)]
    assert ref["fn_rejects"] == {"low_accuracy": 1}
    # paper on the same matrix: the same cases survive (3/4 agree), but 0.5 over all cases is not > 0.5
    paper = cross_validate(fns(4), c2, m2, PRESETS["paper"])
    assert [x["input"] for x in paper["cases"]] == [f"case {i}" for i in range(6)]
    assert paper["functions"] == [] and paper["reason"] == "no_function_survives"
    assert paper["fn_rejects"] == {"low_accuracy": 4}


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
    assert r.fn_accuracy_on == "all_cases"  # the paper's default while the params have no such field
    assert PRESETS["paper"].fn_accuracy_on == "all_cases" and PRESETS["reference"].fn_accuracy_on == "kept_cases"
    # once the stage params carry fn_accuracy_on, custom reads it
    fields = {f: getattr(custom, f) for f in Rules.__dataclass_fields__ if hasattr(custom, f)}
    r = crossval.rules_from_params(SimpleNamespace(**dict(fields, preset="custom", fn_accuracy_on="kept_cases")))
    assert r.fn_accuracy_on == "kept_cases" and r.fn_accuracy == 0.9
    with pytest.raises(ValueError, match="fn_accuracy_on"):
        Rules(fn_accuracy_on="kept")
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


# --------------------------------------------------------------------------- through the real sandbox

LOWER_GOOD = ["def evaluate(response):\n    return response == response.lower()\n",
              "import re\n\ndef evaluate(response):\n    return re.search('[A-Z]', response) is None\n",
              "def evaluate(response):\n    return not any(ch.isupper() for ch in response)\n"]
# Module body raises while loading, before evaluate is ever called.
LOAD_CRASH_RE = "import re\nPATTERN = re.compile('[')\n\ndef evaluate(response):\n    return PATTERN.search(response) is None\n"
LOAD_CRASH_INT = "LIMIT = int('ten')\n\ndef evaluate(response):\n    return response == response.lower()\n"
LOAD_TIMEOUT = "while True:\n    pass\n\ndef evaluate(response):\n    return True\n"
# Loads fine, raises inside evaluate on every input: a (wrong) voter, not a load error.
RUN_CRASH = ["import re\n\ndef evaluate(response):\n    return re.compile('[').search(response) is None\n",
             "def evaluate(response):\n    raise ValueError('cannot decide')\n"]
LOWER_CASES = [{"input": s, "output": True} for s in ("abc", "hello world", "a1 b2", "xyz.", "lower only")] + \
              [{"input": s, "output": False} for s in ("ABC", "Hello", "mixed Case", "UPPER", "aB")]


def _record(rid, srcs):
    return {"id": rid, "instruction": "Answer in all lowercase letters.",
            "functions": [{"src": s, "origin": "model"} for s in srcs], "cases": [dict(c) for c in LOWER_CASES]}


def test_module_level_crash_is_a_load_error_not_a_voter():
    from autoif_lib.sandbox import precheck
    from autoif_lib.sandbox.host import Sandbox, SandboxConfig

    cands = [
        _record("two_good_one_crash", [LOWER_GOOD[0], LOWER_GOOD[1], LOAD_CRASH_RE]),
        # counted as voters, two crashers make every case 2/4 = 0.5 (not > 0.5): no case would survive
        _record("two_good_two_crash", [LOWER_GOOD[0], LOWER_GOOD[1], LOAD_CRASH_RE, LOAD_CRASH_INT]),
        _record("two_good_crash_and_timeout", [LOWER_GOOD[0], LOWER_GOOD[1], LOAD_CRASH_INT, LOAD_TIMEOUT]),
        _record("three_good_one_crash", [*LOWER_GOOD, LOAD_CRASH_RE]),
        # functions that load and then raise in evaluate still vote (wrong on every case)
        _record("two_good_two_run_crash", [LOWER_GOOD[0], LOWER_GOOD[1], *RUN_CRASH]),
    ]
    cfg = SandboxConfig(timeout_s=1.0, memory_mb=256, workers=2, heavy_modules=(), allowed_imports=("re",))
    records, _ = crossval.prepare(cands, precheck)
    assert not any(f["compile_error"] for r in records for f in r["functions"])  # the pre-check passes them all
    with Sandbox(cfg) as sb:
        matrix = crossval.run_matrix(records, sb.verdicts)
        heldout = [{"seed_id": "two_good_one_crash", "response": "fine", "label": True},
                   {"seed_id": "two_good_one_crash", "response": "Not Fine", "label": False}]
        quality = crossval.verifier_quality(records, heldout, sb.verdicts)
    # what the sandbox reports: module-level failures are marked as such, evaluate-time ones are not
    crash_row, run_row = matrix[0][2], matrix[4][2]
    assert [(v.status, v.detail) for v in crash_row] == [
        ("exception", "at module level: error: unterminated character set at position 0")] * 10
    assert [(v.status, v.detail) for v in run_row] == [("exception", "error: unterminated character set at position 0")] * 10
    assert all(v.status == "timeout" and v.detail.startswith("module-level code exceeded") for v in matrix[2][3])

    by_id = {r["id"]: (r, m) for r, m in zip(records, matrix)}

    def check(rid, preset):
        rec, verdicts = by_id[rid]
        return cross_validate(rec["functions"], rec["cases"], verdicts, PRESETS[preset])

    two_good = [LOWER_GOOD[0], LOWER_GOOD[1]]
    for preset in ("paper", "reference"):
        # under both presets a load crash neither votes nor counts towards the gates
        res = check("two_good_one_crash", preset)
        assert res["n_compiled"] == 2 and res["fn_rejects"] == {"load_error": 1}
        res = check("two_good_two_crash", preset)
        assert res["n_compiled"] == 2 and res["fn_rejects"] == {"load_error": 2}
        res = check("two_good_crash_and_timeout", preset)
        assert res["n_compiled"] == 2 and res["fn_rejects"] == {"load_error": 2}
        res = check("three_good_one_crash", preset)
        assert res["kept"] and res["n_compiled"] == 3 and res["fn_rejects"] == {"load_error": 1}
        assert [(f["src"], f["accuracy"]) for f in res["functions"]] == [(s, 1.0) for s in LOWER_GOOD]
        assert len(res["cases"]) == 10

    # paper: the two correct functions carry every case
    for rid in ("two_good_one_crash", "two_good_two_crash", "two_good_crash_and_timeout"):
        res = check(rid, "paper")
        assert res["kept"], (rid, res["reason"])
        assert [(f["src"], f["accuracy"]) for f in res["functions"]] == [(s, 1.0) for s in two_good]
        assert [c["agreement"] for c in res["cases"]] == [1.0] * 10
    # reference: the released code skips a function whose exec() raises before its >= 3 gate
    assert check("two_good_one_crash", "reference")["reason"] == "too_few_functions"
    # evaluate-time crashes are voters: 2 of 4 agree on every case, not > 0.5 -> nothing survives
    res = check("two_good_two_run_crash", "paper")
    assert res["n_compiled"] == 4 and not res["kept"] and res["reason"] == "no_case_survives"

    # the stage-level view: counted under load_error, kept out of the accuracy histogram and of compile_rate
    res = crossval.cross_validate_all(records, matrix, PRESETS["paper"])
    assert [r["id"] for r in res["kept"]] == [c["id"] for c in cands[:4]]
    assert res["function_rejects"] == {"load_error": 6}
    assert len(res["function_accuracy"]) == sum(len(r["functions"]) for r in records) - 6
    assert [(q["compiles"], q["agreement"]) for q in quality] == [(True, 1.0), (True, 1.0), (False, 0.0)]
