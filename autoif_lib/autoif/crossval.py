"""Stage 03: cross-validate functions against test cases by execution.

Pure over records and a verdict matrix (the sandbox produces the verdicts).
For one instruction, with F functions and C cases:

1. drop functions that do not compile: the sandbox's AST pre-check reasons, and
   functions whose module body fails when the sandbox loads it (``load_error``:
   e.g. ``re.compile('[')`` at top level; the sandbox reports such a verdict
   with a detail starting ``at module level:``, or ``module-level code exceeded``
   for a timeout). Such a function neither votes nor counts towards the gates.
   Deduplicate functions (by normalized AST) and cases (same input; an input
   labelled both ways is dropped as ``conflicting_labels``);
2. gate: at least ``min_functions_before`` functions and ``min_cases_before`` cases;
3. keep a case when the fraction of functions agreeing with its label is
   ``> case_agreement`` (rule ``majority``), when any function agrees (``any``),
   or always (``always``: no case filtering);
4. a function's accuracy is its agreement with all cases (``fn_accuracy_on:
   all_cases``) or with the kept cases only (``kept_cases``), errors counting
   as wrong; keep it when accuracy ``> fn_accuracy`` (``>=`` if inclusive).
   The accuracy recorded on a kept function is the one the rule used;
5. keep the instruction with at least ``min_functions_after`` functions and
   ``min_cases_after`` cases.

Presets: ``paper`` (§3.2 of the paper: case agreement > 0.5, function accuracy
over all cases > 0.5, at least 1 and 1), ``reference`` (the released code:
>= 3 loadable functions and >= 10 cases before filtering, a case kept if any
function agrees, function accuracy on the kept cases >= 0.8), and ``none`` (the paper's
Table 3 "w/o cross-verification" ablation: every case kept, every function kept,
accuracy >= 0; step 1 still drops what does not compile or load, and an instruction
still needs one loadable function and one case: a function with no case to run on is
never executed, so whether it loads is unknown).
"""

from __future__ import annotations

import ast
from collections import Counter
from dataclasses import dataclass, replace
from typing import Literal, Sequence

COMPILE_FAILURES = {"syntax_error", "no_evaluate", "forbidden_import"}
# How the sandbox marks a verdict of a function whose module body failed before
# evaluate() was called (server.py: exceptions, memory, kills at module level;
# a module-level timeout). An exception inside evaluate has a plain "Type: message".
MODULE_LEVEL_PREFIXES = ("at module level: ", "module-level code exceeded")


@dataclass(frozen=True)
class Rules:
    min_functions_before: int = 1
    min_cases_before: int = 1
    case_rule: Literal["majority", "any", "always"] = "majority"
    case_agreement: float = 0.5
    fn_accuracy: float = 0.5
    fn_accuracy_inclusive: bool = False
    fn_accuracy_on: Literal["all_cases", "kept_cases"] = "all_cases"
    min_functions_after: int = 1
    min_cases_after: int = 1

    def __post_init__(self):
        if self.case_rule not in ("majority", "any", "always"):
            raise ValueError(f"case_rule must be 'majority', 'any' or 'always', got {self.case_rule!r}")
        if self.fn_accuracy_on not in ("all_cases", "kept_cases"):
            raise ValueError(f"fn_accuracy_on must be 'all_cases' or 'kept_cases', got {self.fn_accuracy_on!r}")


PRESETS = {
    "paper": Rules(),
    "reference": Rules(min_functions_before=3, min_cases_before=10, case_rule="any",
                       fn_accuracy=0.8, fn_accuracy_inclusive=True, fn_accuracy_on="kept_cases"),
    # w/o cross-verification (Table 3): no case or function is filtered by agreement; accuracy >= 0 always holds.
    "none": Rules(case_rule="always", fn_accuracy=0.0, fn_accuracy_inclusive=True),
}

# Rules fields the stage parameters may not have yet: read with the paper's default.
_OPTIONAL_PARAM_FIELDS = ("fn_accuracy_on",)


def rules_from_params(p) -> Rules:
    """The effective rules: the preset, or the individual fields when ``preset == 'custom'``."""
    if p.preset != "custom":
        return PRESETS[p.preset]
    paper = Rules()
    return replace(paper, **{f: getattr(p, f, getattr(paper, f)) if f in _OPTIONAL_PARAM_FIELDS else getattr(p, f)
                             for f in Rules.__dataclass_fields__})


def normalize_source(src: str) -> str:
    """Comments, blank lines and formatting do not make two functions different."""
    try:
        return ast.dump(ast.parse(src))
    except (SyntaxError, ValueError, RecursionError):
        return " ".join(src.split())


def dedup_functions(functions: Sequence[dict]) -> tuple[list[dict], int]:
    seen, out = set(), []
    # Reference functions first so a model copy of one is the duplicate, not the other way round.
    for f in sorted(functions, key=lambda f: f.get("origin") != "reference"):
        key = normalize_source(f["src"])
        if key in seen:
            continue
        seen.add(key)
        out.append(f)
    return out, len(functions) - len(out)


def dedup_cases(cases: Sequence[dict]) -> tuple[list[dict], Counter]:
    """Same input twice with one label: keep one. With both labels: drop both (ambiguous)."""
    by_input: dict[str, list[dict]] = {}
    for c in cases:
        by_input.setdefault(c["input"], []).append(c)
    out, rejects = [], Counter()
    for inp, group in by_input.items():
        labels = {c["output"] for c in group}
        if len(labels) > 1:
            rejects["conflicting_labels"] += len(group)
            continue
        ref = [c for c in group if c.get("origin") == "reference"]
        out.append(ref[0] if ref else group[0])
        if len(group) > 1:
            rejects["duplicate_case"] += len(group) - 1
    return out, rejects


def _agrees(verdict, label: bool) -> bool:
    # Errors (exceptions, timeouts, non-bool returns) never agree with either label.
    return verdict.status in ("pass", "fail") and verdict.ok == bool(label)


def is_load_failure(verdict) -> bool:
    """The sandbox says the function's module body failed before evaluate() ran."""
    return str(getattr(verdict, "detail", "") or "").startswith(MODULE_LEVEL_PREFIXES)


def not_compiled_reason(function: dict, row: Sequence) -> str | None:
    """Why a function does not "compile" in the paper's sense, or None if it does.

    The pre-check's reason prefix (``function['compile_error']``); else, when every
    verdict of its row says so, the sandbox's compile status (``syntax_error``,
    ``no_evaluate``, ``forbidden_import``) or ``load_error`` (its module body failed
    while loading, before evaluate ran). Such a function neither votes nor counts."""
    if function.get("compile_error"):
        return function["compile_error"].split(":")[0]
    if row and all(v.status in COMPILE_FAILURES for v in row):
        return row[0].status
    if row and all(is_load_failure(v) for v in row):
        return "load_error"
    return None


def cross_validate(functions: Sequence[dict], cases: Sequence[dict], verdicts: Sequence[Sequence],
                   rules: Rules) -> dict:
    """Apply the rules to one instruction. ``verdicts[i][j]``: function i on case j's input.

    ``functions`` and ``cases`` are already deduplicated; a function that failed the
    sandbox pre-check carries ``compile_error`` (its verdict row is ignored); one whose
    module body fails in the sandbox is rejected as ``load_error`` (see
    :func:`not_compiled_reason`). Returns the kept functions (with ``accuracy``, measured
    as ``rules.fn_accuracy_on`` says), kept cases (with ``agreement``), the reason if
    rejected, and counts.
    """
    fn_rejects = Counter()
    compiled = []
    for i, f in enumerate(functions):
        reason = not_compiled_reason(f, verdicts[i])
        if reason:
            fn_rejects[reason] += 1
        else:
            compiled.append(i)
    result = {"kept": False, "reason": None, "functions": [], "cases": [], "fn_rejects": fn_rejects,
              "case_rejects": Counter(), "n_compiled": len(compiled)}
    if len(compiled) < rules.min_functions_before:
        result["reason"] = "too_few_functions" if compiled or not functions else "no_function_compiles"
        return result
    if len(cases) < rules.min_cases_before:
        result["reason"] = "too_few_cases"
        return result
    kept_cases = []
    for j, case in enumerate(cases):
        agree = sum(_agrees(verdicts[i][j], case["output"]) for i in compiled)
        frac = agree / len(compiled)
        if rules.case_rule == "always":
            ok = True
        elif rules.case_rule == "majority":
            ok = frac > rules.case_agreement
        else:
            ok = agree > 0
        if ok:
            kept_cases.append((j, frac))
        else:
            result["case_rejects"]["case_disagreement"] += 1
    kept_fns = []
    # paper: accuracy over all test cases; released code: over the kept cases only.
    scored_on = [j for j, _ in kept_cases] if rules.fn_accuracy_on == "kept_cases" else range(len(cases))
    for i in compiled:
        if not kept_cases:
            break
        acc = sum(_agrees(verdicts[i][j], cases[j]["output"]) for j in scored_on) / len(scored_on)
        ok = acc >= rules.fn_accuracy if rules.fn_accuracy_inclusive else acc > rules.fn_accuracy
        if ok:
            kept_fns.append(dict(functions[i], accuracy=round(acc, 4)))
        else:
            fn_rejects["low_accuracy"] += 1
    result["functions"] = kept_fns
    result["cases"] = [dict(cases[j], agreement=round(frac, 4)) for j, frac in kept_cases]
    if len(kept_cases) < rules.min_cases_after:
        result["reason"] = "no_case_survives" if not kept_cases else "too_few_cases_after"
    elif len(kept_fns) < rules.min_functions_after:
        result["reason"] = "no_function_survives" if not kept_fns else "too_few_functions_after"
    else:
        result["kept"] = True
    return result


def function_accuracy_all_cases(verdict_row: Sequence, cases: Sequence[dict]) -> float:
    """Accuracy of one function on all (deduplicated) cases: for pass-rate histograms."""
    if not cases:
        return 0.0
    return sum(_agrees(v, c["output"]) for v, c in zip(verdict_row, cases)) / len(cases)


def verifier_agreement(verdict_rows: Sequence[Sequence], labels: Sequence[bool]) -> list[float]:
    """Per function: fraction of held-out responses where it agrees with the reference label."""
    return [sum(_agrees(v, l) for v, l in zip(row, labels)) / len(labels) if labels else 0.0
            for row in verdict_rows]


# ---------------------------------------------------------------------------
# orchestration over many instructions; ``runner(functions, inputs)`` executes code
# (the sandbox in notebooks, a fake in tests) and returns a verdict matrix.
# ---------------------------------------------------------------------------

def prepare(candidates: Sequence[dict], precheck) -> tuple[list[dict], Counter]:
    """Deduplicate functions and cases and run the AST pre-check; count what was dropped."""
    out, counts = [], Counter()
    for rec in candidates:
        fns, n_dup = dedup_functions(rec["functions"])
        counts["duplicate_function"] += n_dup
        fns = [dict(f, compile_error=precheck(f["src"])) for f in fns]
        cases, case_rej = dedup_cases(rec["cases"])
        counts.update(case_rej)
        out.append(dict(rec, functions=fns, cases=cases))
    return out, counts


def run_matrix(records: Sequence[dict], runner) -> list[list[list]]:
    """One sandbox batch for everything: verdicts[r][i][j] = function i of record r on case j."""
    jobs, where = [], []
    for r, rec in enumerate(records):
        for i, f in enumerate(rec["functions"]):
            if not f.get("compile_error") and rec["cases"]:
                jobs.append((f["src"], [c["input"] for c in rec["cases"]]))
                where.append((r, i))
    matrix: list[list[list]] = [[[] for _ in rec["functions"]] for rec in records]
    if jobs:
        verdicts = runner([s for s, _ in jobs], [inp for _, inp in jobs])
        for (r, i), row in zip(where, verdicts):
            matrix[r][i] = list(row)
    return matrix


def cross_validate_all(records: Sequence[dict], matrix, rules: Rules) -> dict:
    """Apply the rules to every instruction; kept/rejected records and reject counters."""
    kept, rejected = [], []
    instr_rejects, fn_rejects, case_rejects = Counter(), Counter(), Counter()
    fn_acc_all = []
    for rec, verdicts in zip(records, matrix):
        res = cross_validate(rec["functions"], rec["cases"], verdicts, rules)
        fn_rejects.update(res["fn_rejects"])
        case_rejects.update(res["case_rejects"])
        for f, row in zip(rec["functions"], verdicts):
            if row and not not_compiled_reason(f, row):
                fn_acc_all.append({"origin": f.get("origin"), "accuracy": function_accuracy_all_cases(row, rec["cases"])})
        base = {k: v for k, v in rec.items() if k not in ("functions", "cases")}
        if res["kept"]:
            kept.append(dict(base, functions=res["functions"], cases=res["cases"]))
        else:
            instr_rejects[res["reason"]] += 1
            rejected.append(dict(base, reject=res["reason"], functions=rec["functions"], cases=rec["cases"]))
    return {"kept": kept, "rejected": rejected, "instruction_rejects": instr_rejects,
            "function_rejects": fn_rejects, "case_rejects": case_rejects, "function_accuracy": fn_acc_all}


def verifier_quality(records: Sequence[dict], heldout: Sequence[dict], runner,
                     kept: Sequence[dict] = ()) -> list[dict]:
    """For seed instructions: how often each model-written function agrees with the reference
    verifier's labels on held-out responses. One row per (seed, function); ``kept`` marks the
    functions that survived cross-validation."""
    survived = {(r["id"], normalize_source(f["src"])) for r in kept for f in r["functions"]}
    by_seed: dict[str, list[dict]] = {}
    for h in heldout:
        by_seed.setdefault(h["seed_id"], []).append(h)
    jobs, meta = [], []
    for rec in records:
        hs = by_seed.get(rec["id"])
        if not hs:
            continue
        for f in rec["functions"]:
            if f.get("origin") != "model":
                continue
            meta.append((rec, f, [h["label"] for h in hs]))
            jobs.append((f["src"], [h["response"] for h in hs]))
    rows = []
    if jobs:
        verdicts = runner([s for s, _ in jobs], [i for _, i in jobs])
        for (rec, f, labels), row in zip(meta, verdicts):
            compiles = not not_compiled_reason(f, row)
            agree = verifier_agreement([row], labels)[0] if compiles else 0.0
            rows.append({"seed_id": rec["id"], "instruction": rec["instruction"], "sample": f.get("sample"),
                         "compiles": compiles, "agreement": round(agree, 4),
                         "kept": (rec["id"], normalize_source(f["src"])) in survived,
                         "n_responses": len(labels)})
    return rows


def funnel(candidates: Sequence[dict], records: Sequence[dict], res: dict, prep_counts: Counter):
    """Instructions, functions and cases through dedup, pre-check and the rules.

    ``prep_counts`` is what :func:`prepare` dropped (duplicate and conflicting cases)."""
    from ..reporting import Funnel

    f = Funnel("cross-validation")
    n_fn_raw = sum(len(c["functions"]) for c in candidates)
    n_fn = sum(len(r["functions"]) for r in records)
    f.step("functions → unique", n_fn_raw, n_fn, {"duplicate_function": n_fn_raw - n_fn})
    n_compiled = sum(1 for r in records for fn in r["functions"] if not fn.get("compile_error"))
    pre = Counter(fn["compile_error"].split(":")[0] for r in records for fn in r["functions"] if fn.get("compile_error"))
    f.step("unique → pass pre-check", n_fn, n_compiled, dict(pre))
    n_fn_kept = sum(len(r["functions"]) for r in res["kept"])
    rej = {k: v for k, v in res["function_rejects"].items() if k not in pre}
    f.step("pre-checked → kept functions", n_compiled, n_fn_kept, rej,
           note="includes functions of rejected instructions")
    n_case_raw = sum(len(c["cases"]) for c in candidates)
    n_case = sum(len(r["cases"]) for r in records)
    f.step("cases → unique, unambiguous", n_case_raw, n_case,
           {k: prep_counts[k] for k in ("duplicate_case", "conflicting_labels") if prep_counts.get(k)})
    f.step("unique → kept cases", n_case, sum(len(r["cases"]) for r in res["kept"]), dict(res["case_rejects"]),
           note="includes cases of rejected instructions")
    f.step("instructions → kept", len(records), len(res["kept"]), dict(res["instruction_rejects"]))
    return f


def quality_summary(rows: Sequence[dict]) -> dict:
    """Verifier-writing quality: mean agreement with the reference on held-out responses."""
    if not rows:
        return {"n_functions": 0}
    def mean(xs):
        xs = list(xs)
        return round(sum(xs) / len(xs), 4) if xs else None
    best: dict[str, float] = {}
    for r in rows:
        best[r["seed_id"]] = max(best.get(r["seed_id"], 0.0), r["agreement"])
    return {"n_functions": len(rows), "n_seeds": len(best),
            "compile_rate": mean(float(r["compiles"]) for r in rows),
            "mean_agreement_all": mean(r["agreement"] for r in rows),
            "mean_agreement_kept": mean(r["agreement"] for r in rows if r["kept"]),
            "n_kept": sum(1 for r in rows if r["kept"]),
            "mean_best_per_seed": mean(best.values()),
            "chance_level": 0.5}
