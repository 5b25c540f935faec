"""Stage 04: back-translate kept functions into instructions and filter by NLI consistency.

The model reads the ``n_functions`` most accurate kept functions of an
instruction (the reference code takes the first three listed) and writes the
instruction each one checks. An NLI backend compares original (premise) and
back-translation (hypothesis); the instruction is dropped when more than
``max_contradictions`` back-translations contradict it (reference: any).
Neutral passes. An unparseable judgement is counted and treated as not
contradicting (the filter removes evidence of conflict, not absence of evidence);
an instruction with no readable back-translation is kept unless
``drop_unparsed`` (the reference code drops it).

With ``backtranslate: false`` (the paper's Table 3 "w/o back-translation" ablation)
the stage makes no model call: :func:`passthrough` hands every input record on
unchanged (no ``back_translations`` field) and rejects none; :func:`funnel` and
:func:`metrics` say the step was skipped.
"""

from __future__ import annotations

from collections import Counter
from typing import Sequence

from . import parsing, prompts


def select_functions(record: dict, n: int) -> list[dict]:
    """The ``n`` most accurate functions; ties keep their order (stable sort)."""
    return sorted(record["functions"], key=lambda f: -f.get("accuracy", 0.0))[:n]


def strip_docs(src: str) -> str:
    """The code without docstrings and comments.

    A docstring often restates the instruction ("Every word starts with B"); left in, the
    back-translation could copy it and the consistency check would test nothing. Shorter
    prompts are also much cheaper. Unparseable code is returned unchanged.
    """
    import ast

    try:
        tree = ast.parse(src)
    except (SyntaxError, ValueError, RecursionError):
        return src
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and body
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return ast.unparse(tree)


def build_requests(records: Sequence[dict], n: int) -> list[list[dict]]:
    return [prompts.backtranslate([strip_docs(f["src"]) for f in select_functions(r, n)]) for r in records]


def parse_backtranslations(text: str, n_expected: int) -> tuple[list[str], str | None]:
    """Back-translated instructions from one reply; a reason when none could be read."""
    items = [parsing.normalize_instruction(x) for x in parsing.parse_string_list(text)]
    items = [x for x in items if len(x.split()) >= 3][:n_expected]
    return items, (None if items else "no_backtranslation")


def pairs_for(records: Sequence[dict], backs: Sequence[list[str]]) -> list[tuple[int, str, str]]:
    """(record index, premise, hypothesis) for every back-translation."""
    return [(i, r["instruction"], b) for i, (r, bs) in enumerate(zip(records, backs)) for b in bs]


def apply_filter(records: Sequence[dict], backs: Sequence[list[str]], labels_by_record: Sequence[list],
                 max_contradictions: int = 0, drop_unparsed: bool = False) -> dict:
    """Attach back-translations and labels; split into kept and rejected with reasons."""
    kept, rejected = [], []
    rejects: Counter = Counter()
    label_counts: Counter = Counter()
    for rec, bs, labels in zip(records, backs, labels_by_record):
        label_counts.update(str(l) for l in labels)
        out = dict(rec, back_translations=[{"text": b, "nli": l} for b, l in zip(bs, labels)])
        n_contra = sum(1 for l in labels if l == "contradiction")
        if not bs and drop_unparsed:
            rejects["no_backtranslation"] += 1
            rejected.append(dict(out, reject="no_backtranslation"))
        elif n_contra > max_contradictions:
            rejects["nli_contradiction"] += 1
            rejected.append(dict(out, reject="nli_contradiction"))
        else:
            kept.append(out)
    return {"kept": kept, "rejected": rejected, "rejects": rejects, "labels": label_counts}


def passthrough(records: Sequence[dict]) -> dict:
    """``backtranslate: false``: every record kept as it came (same dicts, same keys), none rejected.

    The same shape as :func:`apply_filter`'s result, with ``skipped`` set; takes no model."""
    return {"kept": list(records), "rejected": [], "rejects": Counter(), "labels": Counter(), "skipped": True}


def judge_info(judge, p) -> dict:
    """Which NLI judge ran (for titles and metrics); all None when the step was skipped (``judge`` None)."""
    if judge is None:
        return {"nli_backend": None, "nli_mode": None, "nli_model": None}
    return {"nli_backend": judge.name, "nli_mode": getattr(judge, "mode", "classifier"),
            "nli_model": p.nli_model if judge.name == "cross_encoder" else p.supervisor.model}


def group_labels(n_records: int, pairs: Sequence[tuple[int, str, str]], labels: Sequence) -> list[list]:
    out: list[list] = [[] for _ in range(n_records)]
    for (i, _, _), label in zip(pairs, labels):
        out[i].append(label)
    return out


def funnel(records: Sequence[dict], parsed: Sequence[tuple[list[str], str | None]], res: dict):
    from ..reporting import Funnel

    f = Funnel("back-translation")
    if res.get("skipped"):
        f.step("instructions → kept (back-translation skipped)", len(records), len(res["kept"]), dict(res["rejects"]),
               note="backtranslate: false: no back-translation, no NLI; instructions passed through unchanged")
        return f
    readable = sum(1 for b, _ in parsed if b)
    f.step("instructions → readable back-translation", len(records), readable,
           {"no_backtranslation": len(records) - readable},
           note="unreadable ones are kept unless drop_unparsed")
    f.step("instructions → consistent (NLI)", len(records), len(res["kept"]), dict(res["rejects"]))
    return f


def metrics(records: Sequence[dict], parsed: Sequence[tuple[list[str], str | None]], res: dict, judge, p) -> dict:
    """metrics.json of the stage (without the funnel); ``skipped`` when ``backtranslate`` is false."""
    from ..reporting import by_origin

    return {"backtranslate": not res.get("skipped", False), "skipped": bool(res.get("skipped", False)),
            **judge_info(judge, p), "labels": dict(res["labels"]), "n_in": len(records), "n_kept": len(res["kept"]),
            "n_backtranslations": sum(len(b) for b, _ in parsed),
            "kept_by_origin": by_origin(res["kept"]), "rejects": dict(res["rejects"]),
            "unparsed_backtranslations": sum(1 for _, r in parsed if r)}


def backtranslate(ctx, records: Sequence[dict]) -> tuple[object, list[str], list[tuple[list[str], str | None]]]:
    """Stage 04's model calls: (the generator, one reply per record, each parsed); with ``backtranslate: false``
    no call (nothing to parse, the generator is None)."""
    from ..models import SamplingParams

    p = ctx.p
    gen, replies = None, []
    if p.backtranslate:
        gen = ctx.generator(p.supervisor)
        replies = [o[0] for o in gen.generate(build_requests(records, p.n_functions), SamplingParams.of(p),
                                               desc="back-translate")]
    print(replies[0][:600] if replies else "nothing to back-translate" if p.backtranslate else "skipped: backtranslate is false")
    return gen, replies, [parse_backtranslations(t, p.n_functions) for t in replies]


def filter_contradictions(ctx, records: Sequence[dict], backs: Sequence[list[str]], gen) -> tuple[object, dict]:
    """Stage 04's NLI filter: (the judge, the filter's result); with ``backtranslate: false`` every record passes
    through unjudged (the judge is None)."""
    from . import nli

    p = ctx.p
    if not p.backtranslate:
        return None, passthrough(records)
    judge = nli.make_judge(p.nli_backend, p.nli_model, gen, p.seed)
    pairs = pairs_for(records, backs)
    labels = judge.predict([(a, b) for _, a, b in pairs]) if pairs else []
    return judge, apply_filter(records, backs, group_labels(len(records), pairs, labels), p.max_contradictions,
                               p.drop_unparsed)
