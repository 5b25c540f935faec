"""SPaR verdict parsing and majority voting with bounded re-sampling of ties (no model)."""

from __future__ import annotations

import json

import pytest

from autoif_lib.spar.voting import Vote, parse_verdict, split_critique, summarize, vote, vote_with_resampling

Y = "The response meets every constraint.\nFinal Judgement: Yes"
N = "The response ignores the word limit.\nFinal Judgement: No"
BAD = "I cannot decide."


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Final Judgement: Yes", True),
        ("Final Judgement: No", False),
        ("final judgement: yes", True),
        ("Final judgment: No.", False),
        ("FINAL JUDGEMENT: NO, because the list has four items", False),
        ("**Final Judgement:** Yes", True),
        ("**Final Judgement**: **No**", False),
        ("**Final Judgement**\nYes", True),
        ("Verdict: yes!", True),
        ("The verdict is: No", False),
        ("Final Judgement: [Yes]", True),
        ("Final Judgement (Yes or No): Yes", True),
        ("Final Judgement (Yes or No): No", False),
        ("Final Judgement: (Yes or No) No", False),
        ("Final Judgement (Yes or No):", None),  # template echo alone
        ("Final Judgement: Yes or No", None),
        ("Final Judgement: Yes/No", None),
        # the released judge template qualifies its marker
        ("Crit.\nFinal Judgement (if the Output accurately follows the Prompt): Yes", True),
        ("Final Judgement (if the Output accurately follows the Prompt): No", False),
        ("**Final Judgement (if the output follows the prompt)**: Yes", True),
        ("Final Judgement (if the Output accurately follows the Prompt):", None),
        ("Final Judgement: maybe", None),
        ("Final Judgement: Yesterday it was fine", None),
        ("Final Judgement: Nope", None),
        ("Final Judgement:", None),
        # the last marker decides: a critique quoting an earlier verdict does not count
        ("It said Final Judgement: Yes, but\nFinal Judgement: No", False),
        ("Final Judgement: Yes\nFinal Judgement: unclear", None),
        # a passing use of the word is not a marker
        ("Crit.\nFinal Judgement: No\n\nI stand by this verdict.", False),
        # bare replies (a model primed with "Final Judgement: ")
        ("yes", True),
        ("No.", False),
        (" **YES** ", True),
        ("Yes, it does", None),
        ("Yes or No", None),
        ("asdf qwerty", None),
        ("", None),
        (None, None),
        (42, None),
    ],
)
def test_parse_verdict(text, expected):
    assert parse_verdict(text) is expected


@pytest.mark.parametrize(
    "text, expected",
    [
        (Y, "The response meets every constraint."),
        ("  Too long.\n\n**Final Judgement:** No", "Too long."),
        ("Quote: Final Judgement: Yes.\nBut no.\nFinal Judgement: No", "Quote: Final Judgement: Yes.\nBut no."),
        ("  no marker here  ", "no marker here"),
        ("Final Judgement: Yes", ""),
    ],
)
def test_split_critique(text, expected):
    assert split_critique(text) == expected


def test_vote_majority_and_agreeing_critique():
    v = vote([N.replace("word limit", "first"), Y.replace("every", "first"), Y, BAD, Y])
    assert (v.label, v.yes, v.no, v.invalid, v.rounds, v.outcome) == (True, 3, 1, 1, 1, "majority")
    assert v.value == pytest.approx(0.75)
    assert v.critique == "The response meets first constraint."  # the first Yes, not the first text
    w = vote([Y, N, N, BAD, BAD])
    assert (w.label, w.value, w.critique) == (False, pytest.approx(1 / 3), "The response ignores the word limit.")
    assert w.as_judgment() == (pytest.approx(1 / 3), w.critique)


def test_vote_tie_and_no_valid_vote():
    t = vote([Y, N, BAD, Y, N])
    assert (t.label, t.value, t.outcome, t.critique, t.invalid) == (None, 0.5, "tie_dropped", None, 1)
    assert t.as_judgment() == (None, None)
    z = vote([BAD, "", "Final Judgement: Yes or No"])
    assert (z.label, z.value, z.outcome, z.yes, z.no, z.invalid) == (None, None, "no_valid_vote", 0, 0, 3)
    e = vote([])
    assert (e.label, e.value, e.outcome) == (None, None, "no_valid_vote")


class Sampler:
    """Scripted judgments: script[item][round] is that round's texts; records every call."""

    def __init__(self, script):
        self.script = script
        self.calls = []

    def __call__(self, indices, rnd):
        self.calls.append((list(indices), rnd))
        return [list(self.script[i][min(rnd, len(self.script[i]) - 1)]) for i in indices]


def test_resampling_bounded_and_only_undecided():
    script = {
        0: [[Y, Y, N]],                            # decided in round 0
        1: [[Y, N, BAD], [N, N, Y]],               # tie, then No
        2: [[Y, N, BAD]],                          # tied every round -> dropped
        3: [[BAD, BAD, BAD]],                      # never a valid verdict
        4: [[BAD, Y, N], [BAD, BAD, BAD], [Y, BAD, BAD]],  # decided in the last round
    }
    s = Sampler(script)
    votes = vote_with_resampling(s, items=5, n=3, max_rounds=3)
    assert s.calls == [([0, 1, 2, 3, 4], 0), ([1, 2, 3, 4], 1), ([2, 3, 4], 2)]
    assert [v.label for v in votes] == [True, False, None, None, True]
    assert [v.rounds for v in votes] == [1, 2, 3, 3, 3]
    assert [v.outcome for v in votes] == ["majority", "majority", "tie_dropped", "no_valid_vote", "majority"]
    # each round stands alone: item 4's last round is 1 yes / 0 no, not accumulated with round 0
    assert (votes[4].yes, votes[4].no, votes[4].invalid, votes[4].value) == (1, 0, 2, 1.0)
    assert votes[4].history == [(1, 1, 1), (0, 0, 3), (1, 0, 2)]
    assert votes[1].critique == "The response ignores the word limit."
    assert votes[2].value == 0.5 and votes[3].value is None

    summary = summarize(votes)
    assert summary["items"] == 5
    assert summary["outcomes"] == {"majority": 3, "tie_dropped": 1, "no_valid_vote": 1}
    assert (summary["kept"], summary["dropped"], summary["yes"], summary["no"]) == (3, 2, 2, 1)
    assert summary["judgments"] == 3 * (1 + 2 + 3 + 3 + 3)
    # invalid over all rounds: item1 1+0, item2 1*3, item3 3*3, item4 1+3+2
    assert summary["invalid_judgments"] == 1 + 3 + 9 + 6
    assert summary["rounds"] == {1: 1, 2: 1, 3: 3}
    assert summary["resampled"] == 4
    json.dumps(summary)
    json.dumps([v.to_dict() for v in votes])


def test_resampling_single_round_and_edge_cases():
    s = Sampler({0: [[Y, N]], 1: [[N, N]]})
    votes = vote_with_resampling(s, items=2, n=2, max_rounds=1)
    assert s.calls == [([0, 1], 0)]
    assert [v.outcome for v in votes] == ["tie_dropped", "majority"]
    assert isinstance(votes[0], Vote)

    none = Sampler({})
    assert vote_with_resampling(none, items=0) == [] and none.calls == []

    with pytest.raises(ValueError):
        vote_with_resampling(Sampler({0: [[Y]]}), items=1, n=2)  # too few texts
    with pytest.raises(ValueError):
        vote_with_resampling(lambda idx, r: [], items=1, n=1)  # too few items
    with pytest.raises(ValueError):
        vote_with_resampling(Sampler({0: [[Y]]}), items=1, n=1, max_rounds=0)


def test_summarize_empty():
    s = summarize([])
    assert s["items"] == 0 and s["outcomes"] == {"majority": 0, "tie_dropped": 0, "no_valid_vote": 0}
