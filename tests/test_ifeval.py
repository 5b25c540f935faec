"""Tests for autoif_lib.ifeval and autoif_lib.nltk_setup (offline, ~3 s).

Run: pytest -q tests/test_ifeval.py

The reference scores in ``test_matches_package_reference`` come from the
package's own ``evaluation.py`` functions, loaded here under a separate module
name and driven directly over ``InputExample``s, so they share no code path
with ``score_responses`` beyond the checker classes themselves.
"""

from __future__ import annotations

import importlib.util
import json
import random
import sys
from collections import Counter
from pathlib import Path

import pytest

from autoif_lib import ifeval
from autoif_lib.ifeval import load_ifeval, score_responses, strip_think_blocks
from autoif_lib.nltk_setup import FILES, ensure_punkt_tab, model_dir


@pytest.fixture(scope="module")
def data():
    return load_ifeval()


@pytest.fixture(scope="module")
def by_key(data):
    return {ex["key"]: ex for ex in data}


# --------------------------------------------------------------------------
# (a) data
# --------------------------------------------------------------------------


def test_builtin_counts(data):
    ids = [i for ex in data for i in ex["instruction_id_list"]]
    assert len(data) == 541
    assert len(ids) == 834
    assert len(set(ids)) == 25
    assert Counter(len(ex["instruction_id_list"]) for ex in data) == {1: 305, 2: 179, 3: 57}
    assert len({ex["key"] for ex in data}) == 541
    # Every id in the data has a checker: nothing is scored by the fail-closed path.
    assert set(ids) <= set(ifeval.instruction_registry())


def test_path_source_roundtrip(tmp_path, data):
    p = tmp_path / "mini.jsonl"
    p.write_text("".join(json.dumps(ex) + "\n" for ex in data[:5]))
    assert load_ifeval(p) == data[:5]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"key": 1, "prompt": "x"}\n')
    with pytest.raises(ValueError, match="lacks"):
        load_ifeval(bad)
    with pytest.raises(FileNotFoundError):
        load_ifeval(tmp_path / "missing.jsonl")


def test_hub_style_none_kwargs_dropped(tmp_path):
    # The HF copy pads kwargs with None; passing letter=None would make the
    # checker pick a random letter, so None must be dropped on load.
    rec = {"key": 7, "prompt": "p", "instruction_id_list": ["punctuation:no_comma"],
           "kwargs": [{"letter": None, "num_words": None}]}
    p = tmp_path / "hf.jsonl"
    p.write_text(json.dumps(rec) + "\n")
    assert load_ifeval(p)[0]["kwargs"] == [{}]


# --------------------------------------------------------------------------
# (d) subsets
# --------------------------------------------------------------------------


def test_subset_deterministic(data):
    a = load_ifeval(subset=50, seed=3)
    b = load_ifeval(subset=50, seed=3)
    assert len(a) == 50 and a == b
    assert len({ex["key"] for ex in a}) == 50
    assert [ex["key"] for ex in load_ifeval(subset=50, seed=4)] != [ex["key"] for ex in a]
    # nested: a smaller subset with the same seed is a prefix-selection of the larger
    small = {ex["key"] for ex in load_ifeval(subset=20, seed=3)}
    assert small <= {ex["key"] for ex in a}
    # original order preserved
    pos = {ex["key"]: i for i, ex in enumerate(data)}
    assert [pos[ex["key"]] for ex in a] == sorted(pos[ex["key"]] for ex in a)
    with pytest.raises(ValueError):
        load_ifeval(subset=0)
    with pytest.raises(ValueError):
        load_ifeval(subset=542)


# --------------------------------------------------------------------------
# think stripping
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, want",
    [
        ("plain answer", "plain answer"),
        ("  untouched  \n", "  untouched  \n"),  # no think: scored byte-for-byte
        ("<think>a, b</think>\n\nanswer", "answer"),
        ("<think>x</think>one<think>y</think> two", "one two"),
        ("reasoning only closed</think>\nanswer", "answer"),  # opening tag was in the prompt
        ("<think>cut off mid thought, never closed", ""),
        ("\n<THINK>case</THINK>ok", "ok"),
    ],
)
def test_strip_think_blocks(raw, want):
    assert strip_think_blocks(raw) == want


# --------------------------------------------------------------------------
# (b) equality with the package's own reference functions
# --------------------------------------------------------------------------

REPEAT_1129 = (
    'Write a short startup pitch for a new kind of ice cream called "Sunnis ice cream". '
    'The ice cream should be gentle on the stomach. Contain 6 or more exclamation marks "!" '
    "in your response."
)
# Unseeded, langdetect calls this "en" ~85% and "af" ~15% of the time.
LOWER_AMBIG = "vote now mate"

# key -> (raw response fed to score_responses, answer the reference should see).
# The answer differs from the raw text only in the <think> cases.
HAND = {
    1001: ("Fair traveller hear my plan. On the first day thou shalt walk through Tokyo. "
           "On the second day thou shalt ride the swift train to Kyoto.", None),
    1005: ("[name]\n[address]\n[phone]\nSeeking a first job.", None),  # 3 < 12 placeholders
    1019: ("what are the two young boys doing with their toy guns and horns?", None),
    102: ("* Ava: are you ready for the gala?\n* Ben: in my sweats, yes.\n* Ava: then let us go.", None),
    1072: ("Hammocks are great for sleep.", None),  # far below 400 words
    1075: ('Here is the ad:\n{"product": "ComfyDiaper", "slogan": "Soft all night"}', None),  # loose only
    1082: ("He woke up inside a game.\n***\nHe found the exit and logged out.", None),
    1098: ("Allah\n******\nYahweh", None),
    1108: ("ಹ್ಯಾಂಬರ್ಗರ್‌ಗಳು ಒಂದು ರೀತಿಯ ಸ್ಯಾಂಡ್‌ವಿಚ್ ಎಂದು ಹಲವರು ಭಾವಿಸುತ್ತಾರೆ, ಆದರೆ ಕೆಲವರು ಒಪ್ಪುವುದಿಲ್ಲ.", None),
    1130: ("Quiz: what is a chesterfield? It is a tufted leather sofa.", None),  # many t's
    1131: ("Section 1\nPhil Larkin, clown\nSection 2\nSkills\nSection 3\nExperience\nSection 4\nReferences", None),
    1147: ("We resolved the issue promptly.", None),  # forbidden word
    122: ('"The internet began as ARPANET and now shapes how teenagers learn and talk."', None),
    1246: ("Roses are red, this product is new.\nP.P.S. Edit this template to fit.", None),
    1268: ("Dear diary, today I breathed slowly. I walked outside. I came up with this by imagining a calm day.", None),
    179: ("The Internet changed everything. Investors should care.", None),  # < 50 sentences
    1307: ("*Origins*\n*Trade*\nThe rest is plain.", None),  # 2 < 15 highlights
    1322: ("<<Kotlin vs Java>>\nKotlin is concise; Java is ubiquitous.", None),
    1393: ("Synonyms help variety. But synonyms confuse readers. Too many synonyms hurt search.", None),
    1480: ("Write a blog post about the most interesting things you have seen or ridden on public "
           "transportation.\nI once rode a bus with a goat on board.", None),
    1531: ("A proposal about atlantis and accessibility.", None),  # missing 'constable'
    1566: ("I REGRET THE SUMMER WE LOST. THESE LYRICS ARE ABOUT MISSING SOMEONE YOU LOVED.", None),
    1592: ("SOLAR and WIND can power the US if STORAGE grows.", None),
    181: ("Aliens landed today.\n\nPresident Smith greeted them.\n\nThey wanted pizza.\n\n"
          "They got pizza.\n\nThey left happy.\n\nThe end.", None),
    1220: ("Two cups, one table, one spark.\n**Is there anything else I can help with?**", None),  # loose only
    1051: (LOWER_AMBIG, None),  # langdetect on a near-empty text
    1087: ("the social network is a sharp film about ambition and friendship.", None),
    1122: ("chilling by the pool tonight with friends #weekend #vibes #summer #party", None),
    1129: (REPEAT_1129 + "\nSunnis ice cream is here! Gentle! Creamy! Calm! Cool! Yum! Buy it now!", None),
    1000: ("*Early life* Raymond was born *Rule* He ruled Tripoli *Death* He died in 1187.", None),
    # <think> cases: the think part has commas, the answer has none.
    1154: ("<think>Punjabi, they said, only Punjabi.</think>\n\nਸਾਫਟਵੇਅਰ ਇੰਜੀਨੀਅਰ ਦੇ ਤਕਨੀਕੀ ਹੁਨਰ "
           "ਦਾ ਮੁਲਾਂਕਣ ਕੋਡ ਦੀ ਗੁਣਵੱਤਾ ਅਤੇ ਸਮੱਸਿਆ ਹੱਲ ਕਰਨ ਦੀ ਯੋਗਤਾ ਨਾਲ ਕਰੋ।",
           "ਸਾਫਟਵੇਅਰ ਇੰਜੀਨੀਅਰ ਦੇ ਤਕਨੀਕੀ ਹੁਨਰ ਦਾ ਮੁਲਾਂਕਣ ਕੋਡ ਦੀ ਗੁਣਵੱਤਾ ਅਤੇ ਸਮੱਸਿਆ ਹੱਲ ਕਰਨ ਦੀ ਯੋਗਤਾ ਨਾਲ ਕਰੋ।"),
    1128: ("They ask about sentiment, fine.</think>\nThe sentiment is negative. "
           "Is there anything else I can help with?",
           "The sentiment is negative. Is there anything else I can help with?"),
    227: ("<think>Poodles vary, so I would say", ""),  # unclosed: no answer at all
}


def _load_reference():
    """The package's evaluation.py under a private name (not via autoif_lib)."""
    name = "_test_ifeval_reference"
    if name in sys.modules:
        return sys.modules[name + ".evaluation"]
    spec = importlib.util.find_spec("eval_framework")
    task_dir = Path(spec.submodule_search_locations[0]) / "tasks" / "ifeval"
    pkg_spec = importlib.util.spec_from_file_location(
        name, task_dir / "__init__.py", submodule_search_locations=[str(task_dir)])
    pkg = importlib.util.module_from_spec(pkg_spec)
    sys.modules[name] = pkg
    pkg_spec.loader.exec_module(pkg)
    return sys.modules[name + ".evaluation"]


def _reference_scores(examples, answers):
    """Four metrics by driving the package's strict/loose functions directly."""
    import langdetect

    ev = _load_reference()
    langdetect.DetectorFactory.seed = 0
    outs = {"strict": [], "loose": []}
    for ex in examples:
        inp = ev.InputExample(key=ex["key"], instruction_id_list=ex["instruction_id_list"],
                              prompt=ex["prompt"], kwargs=ex["kwargs"])
        p2r = {ex["prompt"]: answers[ex["key"]]}
        random.seed(ex["key"])
        outs["strict"].append(ev.test_instruction_following_strict(inp, p2r))
        random.seed(ex["key"])
        outs["loose"].append(ev.test_instruction_following_loose(inp, p2r))
    res = {}
    for mode, os_ in outs.items():
        res[f"prompt_{mode}"] = sum(o.follow_all_instructions for o in os_) / len(os_)
        flat = [f for o in os_ for f in o.follow_instruction_list]
        res[f"inst_{mode}"] = sum(flat) / len(flat)
    return res, outs


def test_matches_package_reference(by_key):
    examples = [by_key[k] for k in HAND]
    raw = {by_key[k]["prompt"]: r for k, (r, _) in HAND.items()}
    answers = {k: (r if a is None else a) for k, (r, a) in HAND.items()}

    per_prompt, summary = score_responses(examples, raw)
    ref, outs = _reference_scores(examples, answers)

    for m in ("prompt_strict", "prompt_loose", "inst_strict", "inst_loose"):
        assert summary[m] == pytest.approx(ref[m], abs=1e-12), m
    for row, s, l in zip(per_prompt, outs["strict"], outs["loose"]):
        assert row["follow_instruction_list_strict"] == s.follow_instruction_list, row["key"]
        assert row["follow_instruction_list_loose"] == l.follow_instruction_list, row["key"]
        assert row["response"] == s.response
    # The set exercises both outcomes and the loose relaxation.
    assert 0 < summary["prompt_strict"] < summary["prompt_loose"] < 1
    rows = {r["key"]: r for r in per_prompt}
    assert rows[1075]["follow_all_loose"] and not rows[1075]["follow_all_strict"]
    assert rows[1220]["follow_all_loose"] and not rows[1220]["follow_all_strict"]
    assert rows[1154]["think_stripped"] and rows[1154]["follow_all_strict"]
    assert rows[1128]["follow_all_strict"]
    assert rows[227]["response"] == "" and not rows[227]["follow_all_loose"]
    assert summary["n_think_stripped"] == 3 and summary["n_errors"] == 0
    json.dumps(per_prompt), json.dumps(summary)


def test_list_responses_and_missing(by_key):
    examples = [by_key[1001], by_key[1322]]
    rows_list, s_list = score_responses(examples, [HAND[1001][0], HAND[1322][0]])
    rows_dict, s_dict = score_responses(examples, {ex["prompt"]: HAND[ex["key"]][0] for ex in examples})
    assert s_list == s_dict and s_list["prompt_strict"] == 1.0
    rows, s = score_responses(examples, {examples[0]["prompt"]: HAND[1001][0]})
    assert s["n_missing_responses"] == 1 and rows[1]["missing_response"]
    assert not rows[1]["follow_all_loose"]
    with pytest.raises(ValueError):
        score_responses(examples, ["only one"])


def test_unknown_instruction_fails_closed(by_key):
    ex = dict(by_key[1001])
    ex["instruction_id_list"] = ["punctuation:no_comma", "made_up:always_true"]
    ex["kwargs"] = [{}, {}]
    rows, s = score_responses([ex], [HAND[1001][0]])
    assert rows[0]["follow_instruction_list_strict"] == [True, False]
    assert rows[0]["follow_instruction_list_loose"] == [True, False]
    assert not rows[0]["follow_all_loose"]
    assert s["unknown_instruction_ids"] == ["made_up:always_true"]
    assert s["per_instruction"]["made_up:always_true"] == {"n": 1, "strict": 0.0, "loose": 0.0}


def test_per_instruction_summary(data):
    _, s = score_responses(data[:40], [ex["prompt"] for ex in data[:40]])
    per = s["per_instruction"]
    assert sum(v["n"] for v in per.values()) == s["n_instructions"]
    assert all(0.0 <= v["strict"] <= v["loose"] <= 1.0 for v in per.values())


# --------------------------------------------------------------------------
# (c) determinism
# --------------------------------------------------------------------------


def test_two_runs_identical(by_key):
    keys = [1122, 1129, 1051, 1019, 1087, 1108, 1154, 1566]
    examples = [by_key[k] for k in keys]
    resp = [HAND[k][0] for k in keys]
    random.seed(12345)  # disturb global state: our seeding must not depend on it
    a = score_responses(examples, resp)
    random.seed(999)
    for _ in range(17):
        random.random()
    b = score_responses(examples, resp)
    assert a == b
    # and the same verdicts as in the 32-prompt run (state does not leak across prompts)
    rows, _ = score_responses([by_key[1122]], [HAND[1122][0]])
    assert rows[0] == a[0][0]


# --------------------------------------------------------------------------
# (e) punkt_tab builder
# --------------------------------------------------------------------------


def test_ensure_punkt_tab_loadable(tmp_path):
    import nltk
    import nltk.tokenize

    root = ensure_punkt_tab(tmp_path / "nltk_data")
    folder = model_dir(root)
    assert sorted(p.name for p in folder.iterdir()) == sorted(FILES)
    before = {f: (folder / f).stat().st_mtime_ns for f in FILES}
    ensure_punkt_tab(root)  # idempotent: nothing rewritten
    assert before == {f: (folder / f).stat().st_mtime_ns for f in FILES}

    saved = list(nltk.data.path)
    nltk.data.path[:] = [str(root)]  # only our folder: proves it is what loads
    nltk.tokenize._get_punkt_tokenizer.cache_clear()
    try:
        found = nltk.data.find("tokenizers/punkt_tab/english/")
        assert Path(str(found)).resolve() == folder.resolve()
        assert nltk.sent_tokenize("Dr. Smith went home at 5 p.m. today. He was tired!") == [
            "Dr. Smith went home at 5 p.m. today.", "He was tired!"]
    finally:
        nltk.data.path[:] = saved
        nltk.tokenize._get_punkt_tokenizer.cache_clear()
