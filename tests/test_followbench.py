"""FollowBench: loader on the in-house sample, rule checkers both ways, judge parsing, exact HSR/SSR/CSL."""

from __future__ import annotations

import json
import math

import pytest

from autoif_lib import followbench as fb


def _item(family: str, level: int, hard: bool | None, soft: float | None = None, method: str = "rule") -> dict:
    """A per-item verdict as ``score`` writes it, made by hand."""
    scored = hard is not None
    return {"id": f"{family}-L{level}", "family": family, "category": family.split("-")[0], "level": level,
            "method": method if scored else "no_judge", "scored": scored, "hard": hard,
            "soft": (float(hard) if soft is None else soft) if scored else None}


# --- metrics on hand-made verdicts ---

def test_csl_counts_consecutive_levels_from_level_one():
    items = [_item("style-1", 1, True), _item("style-1", 2, True), _item("style-1", 3, False),   # 2
             _item("style-2", 1, False), _item("style-2", 2, True), _item("style-2", 3, True)]   # 0: L1 fails
    assert fb.csl_per_family(items) == {"style-1": 2, "style-2": 0}
    assert fb.csl(items) == 1.0
    # all three levels: 3; a family without level 1 has run 0 (a missing level ends the run)
    assert fb.csl([_item("c-1", lv, True) for lv in (1, 2, 3)]) == 3.0
    assert fb.csl([_item("c-2", lv, True) for lv in (2, 3)]) == 0.0
    # a gap at level 2 stops the run even though level 3 is satisfied
    assert fb.csl([_item("c-3", 1, True), _item("c-3", 3, True)]) == 1.0
    assert fb.csl([]) is None


def test_csl_leaves_out_families_with_an_unscored_level():
    items = [_item("s-1", 1, True), _item("s-1", 2, None), _item("s-2", 1, True), _item("s-2", 2, False)]
    assert fb.csl_per_family(items) == {"s-2": 1}


def test_level_metrics_exact_values():
    items = [_item("a-1", 1, True, 1.0), _item("a-1", 2, True, 1.0), _item("a-1", 3, False, 2 / 3),
             _item("a-2", 1, False, 0.0), _item("a-2", 2, True, 1.0), _item("a-2", 3, True, 1.0),
             _item("a-3", 1, None)]  # not scored: out of every figure
    m = fb.level_metrics(items)
    rows = {r["level"]: r for r in m["per_level"]}
    assert [rows[lv]["n"] for lv in (1, 2, 3)] == [2, 2, 2]
    assert [rows[lv]["hsr"] for lv in (1, 2, 3)] == [0.5, 1.0, 0.5]
    assert rows[1]["ssr"] == 0.5 and rows[2]["ssr"] == 1.0 and rows[3]["ssr"] == pytest.approx(5 / 6)
    assert m["hsr_avg"] == pytest.approx(2 / 3)
    assert m["ssr_avg"] == pytest.approx((0.5 + 1.0 + 5 / 6) / 3)
    assert rows[1]["hsr_se"] == pytest.approx(math.sqrt(0.25 / 2))
    assert rows[3]["ssr_se"] == pytest.approx(math.sqrt(((2 / 3 - 5 / 6) ** 2 + (1 - 5 / 6) ** 2) / 1 / 2))
    assert rows[2]["hsr_se"] == 0.0
    assert m["n_scored"] == 6 and m["n_families"] == 2
    # family means: a-1 hard 2/3, a-2 hard 2/3 -> no spread
    assert m["hsr_avg_se"] == 0.0
    assert fb.level_metrics([])["hsr_avg"] is None


def test_summary_counts_unparsed_and_not_scored():
    items = [_item("s-1", 1, False, 0.0, method="unparsed"), _item("s-1", 2, True),
             _item("t-1", 1, None), _item("t-1", 2, None)]
    items[0]["reason"] = "no verdict found"
    s = fb.summarize(items)
    assert s["n_items"] == 4 and s["n_not_scored"] == 2 and s["n_unparsed"] == 1
    assert s["methods"] == {"rule": 1, "llm": 0, "unparsed": 1, "no_judge": 2}
    assert s["unparsed"] == [{"id": "s-1-L1", "reason": "no verdict found"}]
    assert s["csl"] == 0.0 and s["n_families_csl"] == 1
    assert s["per_category"]["t"]["n_scored"] == 0 and s["per_category"]["t"]["hsr_avg"] is None
    json.dumps(s)  # JSON-clean (no NaN, no int keys)


# --- rule checkers on hand-written responses, both ways ---

def _sample(id_: str) -> dict:
    return next(ex for ex in fb.load_followbench("sample") if ex["id"] == id_)


def test_example_template_rule_both_ways():
    ex = _sample("example-2-L3")  # demonstrations answer as {'bot': '...'}
    assert fb.rule_for(ex) == "example_template"
    assert fb.rule_check(ex, "{'bot': 'short'}") == [True, True, True]
    assert fb.rule_check(ex, "  {'bot': 'small'}\n") == [True] * 3  # the format is checked, not the answer
    assert fb.rule_check(ex, "short") == [False] * 3
    assert fb.rule_check(ex, "{'bot': 'short'} Hope this helps!") == [False] * 3
    assert fb.example_template_match("Answer: Fe", "{instruction}\nAnswer: {answer}")
    assert not fb.example_template_match("The answer is Fe", "{instruction}\nAnswer: {answer}")
    for rec in fb.load_followbench("sample", categories=["example"]):  # each reference answer fits its template
        assert fb.rule_check(rec, rec["answer"]) == [True] * rec["level"]


def test_answer_rules_both_ways():
    gsm = _sample("situation-1-L3")  # change from $20: $7
    assert fb.rule_for(gsm) == "answer:gsm_8k"
    assert fb.rule_check(gsm, "12 + 2 = $14, less $1 is $13, so the change is $7.00") == [True] * 3
    assert fb.rule_check(gsm, "She gets $7 back... no wait, $8.") == [False] * 3
    assert fb.rule_check(gsm, "seven dollars") == [False] * 3
    edit = _sample("mixed-1-L2")
    assert fb.rule_check(edit, "THE DOG SAT ON THE MAT\n") == [True, True]
    assert fb.rule_check(edit, "THE DOG SAT ON THE MAT.") == [False, False]
    # whole-answer rules on records shaped like the published ones
    bbh = {"id": "x", "category": "situation", "source": "BBH_logical", "example_id": 1, "level": 2,
           "instruction": "...", "target": "(B)", "family": "situation-1", "constraint_types": ["situation"] * 2}
    assert fb.rule_check(bbh, "(A) is wrong because ... so the answer is (B)") == [True, True]
    assert fb.rule_check(bbh, "(B) looks right but it is (C)") == [False, False]
    ner = dict(bbh, source="CONLL2003", target="['Paris', 'Paris, France']")
    assert fb.rule_check(ner, "Paris, France") == [True, True] and fb.rule_check(ner, "France") == [False, False]
    with pytest.raises(ValueError, match="cannot be checked"):  # a broken target is an error, never a pass
        fb.rule_check(dict(ner, target="['Paris"), "Paris")
    per, s = fb.score([dict(ner, target="['Paris")], ["Paris"])
    assert per[0]["hard"] is False and "cannot be checked" in per[0]["rule_error"] and s["n_rule_errors"] == 1


def test_family_rule_checks_each_constraint_and_needs_its_cues():
    instr = ("Write a 8-word summary for the following text. Do not use any punctuation. Make sure all words are "
             "lowercase. Do not use the word 'bus'.\n\nsome news text")
    ex = {"id": "mixed-14-L4", "category": "mixed", "source": "gigaword", "example_id": 14, "level": 4,
          "instruction": instr, "target": None}
    assert fb.rule_for(ex) == "family:headline_eight_words"
    assert fb.rule_check(ex, "two killed in suspected bomb attack in philippines") == [True] * 4
    #                         8 words,   punctuation, lowercase, no 'bus'
    assert fb.rule_check(ex, "Bomb hits bus in southern Philippines, two dead") == [True, False, False, False]
    # same source, but the instruction lacks the cues of this family: the judge decides, not these rules
    other = dict(ex, instruction="Summarise the text in a friendly tone for children.")
    assert fb.rule_for(other) is None and fb.rule_check(other, "anything") is None


# --- judge output parsing ---

@pytest.mark.parametrize("text, n, want", [
    ("1) step one adds a rhyme...\nConstraint 1: YES\nConstraint 2: NO", 2, [True, False]),
    ("Constraint 1: NO (at first)\n...\n**Constraint 1:** YES\n**Constraint 2**: no", 2, [True, False]),  # last wins
    ("Analysis...\n['YES', 'NO', 'YES']", 3, [True, False, True]),
    ("The tone is cheerful.\nYES", 1, [True]),
    ("<think>Constraint 1: NO</think>Constraint 1: YES", 1, [True]),
    ("Constraint 1: PARTIAL\nConstraint 2: yes", 2, [False, True]),  # partial is not satisfied
    ("Constraint 1 (tone): YES\nConstraint 2 (rhyme): no", 2, [True, False]),
    ("1. Step one asks for a tone.\n2. Step two asks for a rhyme.\n\n1. YES\n2. **NO**", 2, [True, False]),
])
def test_parse_judgment_valid(text, n, want):
    verdicts, how = fb.parse_judgment(text, n)
    assert verdicts == want, how


@pytest.mark.parametrize("text, n, reason", [
    ("Constraint 1: YES\nConstraint 2: YES", 3, "2 of 3"),           # partial: fewer verdicts than constraints
    ("['YES', 'NO']", 3, "2 verdicts for 3"),
    ("Constraint 1: YES\nConstraint 4: NO", 2, "constraint 4"),
    ("The response is lovely and I like it a lot.", 2, "no verdict"),  # garbage
    ("YES or NO? Hard to say: yes and no.", 1, "no verdict"),           # both words on the last line
    ("", 1, "empty"),
    ("<think>Constraint 1: YES</think>", 1, "only reasoning"),
    (None, 1, "empty"),
])
def test_parse_judgment_unparsed(text, n, reason):
    verdicts, how = fb.parse_judgment(text, n)
    assert verdicts is None and reason in how


def test_judge_prompt_shows_the_evolution_path_and_the_answer_format():
    path = {0: "Describe tea.", 1: "Describe tea formally.", 2: "Describe tea formally, as the cup."}
    p = fb.judge_prompt(path, 2, "Behold the brew.", "mixed", ["style", "content"])
    assert p.index("Describe tea.") < p.index("Describe tea formally.") < p.index("as the cup") < p.index("Behold")
    assert "(content constraint)" in p and p.rstrip().endswith("Constraint 1: YES or NO\nConstraint 2: YES or NO")


# --- scoring with a judge ---

class FixedJudge:
    """Stands in for a Generator: a fixed judgment per item, recognised by a phrase of its response."""

    def __init__(self, by_phrase: dict[str, str]):
        self.by_phrase = by_phrase
        self.calls = []

    def generate(self, conversations, sp=None, desc="generate"):
        self.calls.append((len(conversations), sp, desc))
        out = []
        for conv in conversations:
            prompt = conv[-1]["content"]
            out.append([next((j for ph, j in self.by_phrase.items() if ph in prompt), "no idea")])
        return out


def _responses(examples) -> dict:
    resp = {ex["id"]: f"response {ex['id']}" for ex in examples if ex["level"] > 0}
    resp.update({"example-1-L1": "Answer: Fe", "example-1-L2": "Fe", "example-1-L3": "Answer: Fe",
                 "example-2-L1": "{'bot': 'short'}", "example-2-L2": "{'bot': 'short'}",
                 "situation-1-L1": "$14", "situation-1-L2": "$13", "situation-1-L3": "$8",
                 "mixed-1-L1": "The dog sat on the mat", "mixed-1-L2": "THE DOG SAT ON THE MAT",
                 "mixed-1-L3": "THE DOG SAT ON THE MAT!"})
    del resp["example-2-L3"]  # missing: scored as ""
    return resp


def test_score_with_a_fixed_judge():
    examples = fb.load_followbench("sample")
    judge = FixedJudge({
        "response situation-2-L1": "Constraint 1: YES",
        "response situation-2-L2": "Constraint 1: YES\nConstraint 2: NO",
        "response situation-2-L3": "I cannot decide.",                     # garbage -> unparsed
        "response style-1-L1": "Constraint 1: YES",
        "response style-1-L2": "Constraint 1: YES\nConstraint 2: YES",
        "response style-1-L3": "Constraint 1: YES\nConstraint 2: YES",     # partial -> unparsed
        "response style-2-L1": "['NO']",
        "response style-2-L2": "Constraint 1: YES\nConstraint 2: YES",
        "response style-2-L3": "Constraint 1: YES\nConstraint 2: YES\nConstraint 3: YES",
    })
    per, s = fb.score(examples, _responses(examples), judge_generator=judge, max_new_tokens=64)
    by = {r["id"]: r for r in per}
    assert len(per) == 21 and not any(r["level"] == 0 for r in per)
    assert len(judge.calls) == 1  # one batched call for the 9 judged items, greedy
    n, sp, desc = judge.calls[0]
    assert n == 9 and sp.temperature == 0.0 and sp.max_new_tokens == 64 and "FollowBench" in desc
    assert by["situation-2-L2"]["method"] == "llm" and by["situation-2-L2"]["satisfied"] == [True, False]
    assert by["situation-2-L2"]["hard"] is False and by["situation-2-L2"]["soft"] == 0.5
    for bad in ("situation-2-L3", "style-1-L3"):  # fail closed, explained
        assert by[bad]["method"] == "unparsed" and by[bad]["satisfied"] == [False] * 3 and by[bad]["reason"]
    assert by["example-1-L2"]["method"] == "rule" and by["example-1-L2"]["hard"] is False
    assert by["example-2-L3"]["missing_response"] and by["example-2-L3"]["hard"] is False
    assert s["n_unparsed"] == 2 and s["n_not_scored"] == 0 and s["n_missing_responses"] == 1
    assert s["methods"] == {"rule": 12, "llm": 7, "unparsed": 2, "no_judge": 0}
    # level 1: example 1 ok, example 2 ok, situation-1 ok, situation-2 ok, style-1 ok, style-2 NO, mixed ok
    rows = {r["level"]: r for r in s["per_level"]}
    assert rows[1]["n"] == 7 and rows[1]["hsr"] == pytest.approx(6 / 7)
    # level 3: ex-1 ok, ex-2 missing, sit-1 $8 wrong, sit-2 unparsed, style-1 unparsed, style-2 ok, mixed ok
    assert rows[3]["hsr"] == pytest.approx(3 / 7) and rows[3]["ssr"] == pytest.approx(3 / 7)
    # level 2: ex-1 "Fe" wrong, ex-2 ok, sit-1 ok, sit-2 [Y, N], style-1 ok, style-2 ok, mixed ok
    assert rows[2]["hsr"] == pytest.approx(5 / 7) and rows[2]["ssr"] == pytest.approx(5.5 / 7)
    # CSL: ex-1 1, ex-2 2, sit-1 2, sit-2 1, style-1 2, style-2 0, mixed 3
    assert s["csl"] == pytest.approx(11 / 7) and s["n_families_csl"] == 7
    assert s["per_category"]["style"]["methods"] == {"llm": 5, "unparsed": 1}
    assert s["judge"] == {"temperature": 0.0, "max_new_tokens": 64, "seed": 0}
    json.dumps([per, s])


def test_a_judge_reply_missing_for_an_item_is_unparsed_not_dropped():
    examples = fb.load_followbench("sample", categories=["style"])

    class ShortJudge:
        def generate(self, conversations, sp=None, desc=""):
            return [["Constraint 1: YES"]]  # one reply for six requests

    per, s = fb.score(examples, {}, judge_generator=ShortJudge())
    assert len(per) == 6 and s["n_unparsed"] == 5 and s["n_missing_responses"] == 6
    assert s["methods"]["llm"] == 1


def test_score_without_a_judge_counts_judged_items_as_not_scored():
    examples = fb.load_followbench("sample")
    per, s = fb.score(examples, _responses(examples))
    assert s["n_items"] == 21 and s["n_not_scored"] == 9 and s["methods"]["no_judge"] == 9
    assert s["n_scored"] == 12 and s["judge"] is None
    assert all(r["satisfied"] is None and r["hard"] is None for r in per if r["method"] == "no_judge")
    assert s["per_category"]["style"]["n_not_scored"] == 6 and s["per_category"]["style"]["csl"] is None
    assert s["n_families_csl"] == 4  # the three judged families are left out of CSL, not counted as 0


def test_score_takes_a_list_aligned_with_examples():
    examples = fb.load_followbench("sample", categories=["mixed"])
    per, _ = fb.score(examples, [None, "The dog sat on the mat", "x", "<think>hmm</think>THE DOG SAT ON THE MAT!"])
    assert [r["hard"] for r in per] == [True, False, True] and per[2]["think_stripped"]
    with pytest.raises(ValueError, match="3 responses for 4"):
        fb.score(examples, ["a", "b", "c"])


# --- loader ---

def test_loader_on_the_sample():
    examples = fb.load_followbench("sample")
    assert len(examples) == 26
    assert len({ex["family"] for ex in examples}) == 7
    assert {ex["level"] for ex in examples} == {0, 1, 2, 3}
    assert {ex["category"] for ex in examples} == {"example", "situation", "style", "mixed"}
    assert not any(ex["level"] == 0 for ex in examples if ex["category"] == "example")
    edit = [ex for ex in examples if ex["family"] == "mixed-1"]
    assert [ex["constraint_types"] for ex in edit] == [[], ["content"], ["content", "format"],
                                                       ["content", "format", "format"]]
    assert all(ex["target"] is None for ex in examples if ex["source"] == "in_house")
    assert {r["id"] for r in examples} == {f"{r['family']}-L{r['level']}" for r in examples}
    one = fb.load_followbench(fb.SAMPLE_DIR / "style_constraints.json")
    assert len(one) == 8 and {ex["category"] for ex in one} == {"style"}
    assert len(fb.load_followbench("sample", categories=["style", "example"])) == 14
    with pytest.raises(ValueError, match="unknown FollowBench categories"):
        fb.load_followbench("sample", categories=["tone"])


def test_subset_keeps_whole_families_fixed_and_nested():
    all_ = fb.load_followbench("sample")
    levels = {}
    for ex in all_:
        levels.setdefault(ex["family"], set()).add(ex["level"])
    three = fb.load_followbench("sample", subset=3, seed=1)
    fams = {ex["family"] for ex in three}
    assert len(fams) == 3
    assert all({ex["level"] for ex in three if ex["family"] == f} == levels[f] for f in fams)
    assert three == fb.load_followbench("sample", subset=3, seed=1)
    assert fams <= {ex["family"] for ex in fb.load_followbench("sample", subset=5, seed=1)}
    with pytest.raises(ValueError, match="subset must be in 1..7"):
        fb.load_followbench("sample", subset=8)


@pytest.mark.parametrize("record, match", [
    ({"example_id": 1, "category": "style", "source": "s", "instruction": "x"},
     r"\[1\]: FollowBench record lacks \['level'\]"),
    ({"example_id": 1, "category": "style", "source": "s", "level": 7, "instruction": "x"}, r"\[1\]: level must be"),
    ({"example_id": 1, "category": "style", "source": "s", "level": "2", "instruction": "x"}, r"\[1\]: level must be"),
    ({"example_id": 1, "category": "style", "source": "s", "level": 2, "instruction": ""}, r"\[1\]: instruction"),
    ({"example_id": 1, "category": "style", "source": "s", "level": 0, "instruction": "x"},
     r"\[1\]: family style-1 has level 0 twice"),
])
def test_bad_file_names_the_file_and_record(tmp_path, record, match):
    good = {"example_id": 1, "category": "style", "source": "s", "level": 0, "instruction": "Say hi.", "target": ""}
    path = tmp_path / "style_constraints.json"
    path.write_text(json.dumps([good, record]))
    with pytest.raises(ValueError, match=match) as err:
        fb.load_followbench(tmp_path)
    assert "style_constraints.json" in str(err.value)


def test_bad_json_and_missing_source(tmp_path):
    (tmp_path / "format_constraints.json").write_text("[{")
    with pytest.raises(ValueError, match="format_constraints.json: not valid JSON"):
        fb.load_followbench(tmp_path)
    jl = tmp_path / "extra.jsonl"
    jl.write_text('{"example_id": 1, "category": "content", "level": 1, "instruction": "x"}\n{"level": 1}\n')
    with pytest.raises(ValueError, match=r"extra.jsonl:2: FollowBench record lacks"):
        fb.load_followbench(jl)
    with pytest.raises(FileNotFoundError):
        fb.load_followbench(tmp_path / "nowhere")


# --- the real embedded model as judge (two short items) ---

def test_embedded_model_as_judge_runs_end_to_end():
    """Two level-1 items through the real Generator: verdicts come back parsed or counted, never a crash.

    Four new tokens: this checks the plumbing (prompt, greedy params, reply shape), not the 135M model's
    judging; ~9 s on an idle 2-core CPU, mostly the model load and the prompt prefill."""
    from autoif_lib.models import Generator, ModelSpec

    examples = [ex for ex in fb.load_followbench("sample", categories=["style"]) if ex["level"] <= 1]
    resp = {"style-1-L1": "Hello friends! Sunlight bumps into the air, and blue light bounces around the most.",
            "style-2-L1": "Behold, the honoured morning tea."}
    gen = Generator(ModelSpec(batch_size=2), None, progress=False)
    per, s = fb.score(examples, resp, judge_generator=gen, max_new_tokens=4)
    assert len(per) == 2 and {r["method"] for r in per} <= {"llm", "unparsed"}
    assert all(r["scored"] and len(r["satisfied"]) == 1 for r in per)
    assert s["n_unparsed"] == sum(r["method"] == "unparsed" for r in per)
