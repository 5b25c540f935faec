"""IFBench offline: the shipped test set, its checkers under IFEval's protocol, and prompts that cannot be scored
here (NLTK data no registry package ships) left out alike for every checkpoint and counted."""

from __future__ import annotations

import pytest

from autoif_lib import ifbench

WORDS = {"key": 1, "prompt": "Describe a cat. The response must contain between 3 and 5 words.",
         "instruction_id_list": ["count:word_count_range"], "kwargs": [{"min_words": 3, "max_words": 5}]}
ALPHABET = {"key": 2, "prompt": "Write a sentence whose words start with consecutive letters of the alphabet.",
            "instruction_id_list": ["words:alphabet"], "kwargs": [{}]}
BOTH = {"key": 3, "prompt": "Both at once.", "instruction_id_list": ["words:alphabet", "count:word_count_range"],
        "kwargs": [{}, {"min_words": 3, "max_words": 5}]}
UNKNOWN = {"key": 4, "prompt": "x", "instruction_id_list": ["count:no_such_constraint"], "kwargs": [{}]}


@pytest.fixture(autouse=True)
def _nothing_missing(monkeypatch):
    # Verdicts must not depend on which NLTK corpora this machine happens to hold.
    monkeypatch.setattr(ifbench, "missing_resources", lambda: {})


def verdicts(ex, response):
    rows, _ = ifbench.score_responses([ex], [response])
    return rows[0]["follow_instruction_list_strict"], rows[0]["follow_instruction_list_loose"]


def test_constraint_verdicts_on_hand_written_responses():
    assert verdicts(WORDS, "one small grey cat") == ([True], [True])
    assert verdicts(WORDS, "cat") == ([False], [False])
    assert verdicts(WORDS, "one two three four five six") == ([False], [False])
    assert verdicts(ALPHABET, "Apples bring cheer daily.") == ([True], [True])
    assert verdicts(ALPHABET, "Apples bring joy.") == ([False], [False])
    # a chatty first line breaks strict; loose drops the first line (IFEval's loose transformations)
    assert verdicts(ALPHABET, "Sure, here it is:\nApples bring cheer daily.") == ([False], [True])


def test_prompt_level_needs_every_constraint_and_unknown_ids_fail_closed():
    rows, s = ifbench.score_responses([BOTH, UNKNOWN], ["Apples bring cheer daily, every evening.", "anything"])
    assert rows[0]["follow_instruction_list_strict"] == [False, False]  # "every" breaks the loop; 6 words
    rows, s = ifbench.score_responses([BOTH, UNKNOWN], ["Apples bring cheer daily.", "anything"])
    assert rows[0]["follow_instruction_list_strict"] == [True, True] and rows[0]["follow_all_strict"]
    assert rows[1]["follow_all_strict"] is False and s["unknown_instruction_ids"] == ["count:no_such_constraint"]
    assert (s["prompt_strict"], s["inst_strict"], s["n_prompts"]) == (0.5, 2 / 3, 2)


def test_prompts_lacking_nltk_data_are_left_out_and_counted(monkeypatch):
    monkeypatch.setattr(ifbench, "missing_resources", lambda: {"words:alphabet": "taggers/x"})
    rows, s = ifbench.score_responses([WORDS, ALPHABET, BOTH], ["one small grey cat", "Apples bring", "x"])
    assert [r["key"] for r in rows] == [1]  # keys 2 and 3 carry words:alphabet
    assert (s["n_prompts"], s["n_not_scored"], s["not_scored_instruction_ids"]) == (1, 2, {"words:alphabet": 2})
    assert s["missing_nltk_data"] == ["taggers/x"] and s["prompt_strict"] == 1.0
    # which prompts are left out depends on the constraints only, never on the response: pairing survives
    rows2, _ = ifbench.score_responses([WORDS, ALPHABET, BOTH], ["", "Apples bring cheer", "Apples bring cheer"])
    assert [r["key"] for r in rows2] == [1]


def test_the_two_data_hungry_constraints_are_the_ones_named():
    # the registry is if-verifiable's; these two ids must exist there, or the exclusion list is stale
    assert set(ifbench.NLTK_RESOURCES) <= set(ifbench.instruction_registry())


def test_shipped_test_set_loads_offline_with_every_constraint_known():
    ex = ifbench.load_ifbench()
    assert len(ex) == ifbench.N_PROMPTS and len({e["key"] for e in ex}) == len(ex)
    reg = ifbench.instruction_registry()
    assert not {i for e in ex for i in e["instruction_id_list"]} - set(reg)
    assert {ifbench.constraint_family(i) for e in ex for i in e["instruction_id_list"]} >= {"count", "format", "words"}
    small, big = ifbench.load_ifbench(subset=10, seed=3), ifbench.load_ifbench(subset=40, seed=3)
    assert {e["key"] for e in small} < {e["key"] for e in big}  # nested subsets, as IFEval's


def test_shipped_prompts_score_the_same_every_time(monkeypatch):
    """Echoing each prompt back: a fixed, known verdict set (several constraints ask to repeat the request), equal
    across two runs (random and langdetect seeded per prompt)."""
    monkeypatch.setattr(ifbench, "missing_resources", lambda: dict(ifbench.NLTK_RESOURCES))
    ex = ifbench.load_ifbench()
    rows, s = ifbench.score_responses(ex, [e["prompt"] for e in ex])
    rows2, _ = ifbench.score_responses(ex, [e["prompt"] for e in ex])
    assert rows == rows2
    assert (s["n_prompts"], s["n_not_scored"]) == (282, 18)
    assert sum(r["follow_all_strict"] for r in rows) == 37 and s["n_errors"] == 0
