"""SPaR's model-call glue with scripted models: the judge paths (LLM votes, sandboxed verifiers, both),
likelihood votes, the cache, refinement parsing, root picking, and the pipeline's iteration wiring."""

from __future__ import annotations

import pytest

from autoif_lib.pipeline import get_pipeline
from autoif_lib.spar import roles, selfplay
from autoif_lib.spar.pipeline import models_source, stage_name

LOWER = "def evaluate(response):\n    return response == response.lower()"
SHORT = "def evaluate(response):\n    return len(response.split()) <= 3"


class ScriptedGen:
    """Stands in for a Generator: returns scripted judgments and records what it was asked."""

    def __init__(self, reply):
        self.reply, self.requests = reply, []

    def generate(self, convs, sp, desc=""):
        self.requests.append((convs, sp))
        return [[self.reply(c, k) for k in range(sp.n)] for c in convs]


def test_llm_judge_majority_and_cache():
    gen = ScriptedGen(lambda c, k: "Step-by-step verification: fine.\nFinal Judgement: " + ("Yes" if k < 2 else "No"))
    j = roles.Judge("llm", gen, n=3, temperature=0.7, max_new_tokens=64, max_rounds=3, seed=0)
    recs = j.judge_many([("p", "r1"), ("p", "r2"), ("p", "r1")])
    assert [r["value"] for r in recs] == [pytest.approx(2 / 3)] * 3 and all(r["label"] is True for r in recs)
    assert recs[0]["critique"] == "Step-by-step verification: fine."
    assert j.calls["judged"] == 2 and j.calls["cached"] == 1  # r1 judged once
    j([("p", "r1")])
    assert len(gen.requests) == 1  # fully cached: no model call


def test_tied_votes_are_resampled_then_dropped():
    gen = ScriptedGen(lambda c, k: "Final Judgement: " + ("Yes" if k % 2 == 0 else "No"))  # 1 yes, 1 no: a tie
    j = roles.Judge("llm", gen, n=2, temperature=0.7, max_new_tokens=8, max_rounds=3, seed=0)
    (rec,) = j.judge_many([("p", "r")])
    assert rec["value"] is None and rec["label"] is None and rec["votes"]["outcome"] == "tie_dropped"
    assert len(gen.requests) == 3 and j.calls["judgment_completions"] == 6


LONG = "def evaluate(response):\n    return len(response.split()) >= 2"
NO_E = "def evaluate(response):\n    return 'e' not in response.lower()"
PROMPT3 = {"prompt": "Say hi. Use lowercase. Use at most three words. Use at least two words.",
           "constraints": ["Use lowercase.", "Use at most three words.", "Use at least two words."],
           "verifiers": [LOWER, SHORT, LONG]}
PROMPT4 = {"prompt": "Greet. Lowercase, 2-3 words, no letter e.",
           "constraints": ["Use lowercase.", "Use at most three words.", "Use at least two words.", "No letter e."],
           "verifiers": [LOWER, SHORT, LONG, NO_E]}


def test_verifier_judge_succeeds_only_when_every_constraint_passes():
    from autoif_lib.sandbox import Sandbox, SandboxConfig
    from autoif_lib.spar import data

    p3, p4 = PROMPT3["prompt"], PROMPT4["prompt"]
    with Sandbox(SandboxConfig(timeout_s=2.0)) as box:
        j = roles.Judge("verifiers", None, n=5, temperature=0.7, max_new_tokens=8, max_rounds=3, seed=0,
                        verifiers=roles.verifier_index([PROMPT3, PROMPT4]), runner=box.verdicts)
        recs = j.judge_many([(p3, "hi there"), (p3, "hi there my friend"), (p3, "Hi There Friend Now"),
                             (p4, "hi pal"), (p4, "hi there"), (p4, "Hi There")])
    # 3 constraints: all pass / 2 of 3 (too long) / 1 of 3; 4 constraints: all / 3 of 4 (an e) / 2 of 4
    assert [r["verifier_value"] for r in recs] == [1.0, pytest.approx(2 / 3), pytest.approx(1 / 3), 1.0, 0.75, 0.5]
    assert [r["label"] for r in recs] == [True, False, False, True, False, False]   # 2 of 3 is not a success
    assert [r["value"] for r in recs] == [1.0, pytest.approx(1 / 3), pytest.approx(1 / 6), 1.0, 0.375, 0.25]
    assert recs[1]["critique"].count("not met") == 1 and "at most three words" in recs[1]["critique"]
    assert "not met: No letter e." in recs[4]["critique"]
    # the RFT targets these give never contradict the verifiers: a No lists what failed, a Yes nothing
    for r in recs:
        text = data.judgment_text(r["critique"], r["label"])
        assert text.endswith("Final Judgement: " + ("Yes" if r["label"] else "No"))
        assert ("not met" in text) is (not r["label"])
    assert j.calls["verifier_runs"] == 3 * 3 + 3 * 4


def test_both_needs_the_majority_yes_and_every_verifier():
    from autoif_lib.sandbox import Sandbox, SandboxConfig
    from autoif_lib.spar import data

    def reply(conv, k):  # the refiner passes everything but the two-word answers, 2 votes of 3 either way
        text = conv[0]["content"]
        yes = ("hi there my friend" in text or "Hi There" in text) == (k < 2)
        return ("The response meets each requirement." if yes else "A requirement is missed.") + \
            "\nFinal Judgement: " + ("Yes" if yes else "No")

    gen = ScriptedGen(reply)
    p3, p4 = PROMPT3["prompt"], PROMPT4["prompt"]
    with Sandbox(SandboxConfig(timeout_s=2.0)) as box:
        j = roles.Judge("both", gen, n=3, temperature=0.7, max_new_tokens=8, max_rounds=1, seed=0,
                        verifiers=roles.verifier_index([PROMPT3, PROMPT4]), runner=box.verdicts)
        recs = j.judge_many([(p3, "hi there my friend"), (p3, "hi there"), (p4, "hi pal"), (p4, "Hi There")])
    # LLM yes + 2/3 verifiers: No; LLM no + all verifiers: No; LLM yes? (hi pal: no) ; LLM yes + 2/4: No
    assert [r["llm_value"] for r in recs] == [pytest.approx(2 / 3), pytest.approx(1 / 3), pytest.approx(1 / 3),
                                              pytest.approx(2 / 3)]
    assert [r["label"] for r in recs] == [False, False, False, False]
    assert recs[0]["value"] == pytest.approx(1 / 3) and recs[1]["value"] == pytest.approx(1 / 3)
    # verifiers failed what the LLM passed: the critique is the failed constraints alone (no "meets each requirement")
    assert recs[0]["critique"] == roles.verifier_critique(["Use at most three words."])
    assert "A requirement is missed." in recs[1]["critique"] and "not met" not in recs[1]["critique"]
    assert "not met: Use lowercase." in recs[3]["critique"] and "meets each" not in recs[3]["critique"]
    gen2 = ScriptedGen(lambda c, k: "Fine.\nFinal Judgement: Yes")
    with Sandbox(SandboxConfig(timeout_s=2.0)) as box:
        j2 = roles.Judge("both", gen2, n=3, temperature=0.7, max_new_tokens=8, max_rounds=1, seed=0,
                         verifiers=roles.verifier_index([PROMPT4]), runner=box.verdicts)
        (ok,) = j2.judge_many([(p4, "hi pal")])
    assert ok["label"] is True and ok["value"] == 1.0 and ok["critique"] == "Fine."
    for r in [*recs, ok]:
        assert data.judgment_text(r["critique"], r["label"]) is not None


def test_verifier_judge_needs_verifiers():
    with pytest.raises(ValueError, match="needs prompts with verifiers"):
        roles.Judge("verifiers", None, 5, 0.7, 8, 3, 0)
    with pytest.raises(ValueError, match="needs prompts with verifiers"):  # evolved prompts have none
        roles.Judge("both", ScriptedGen(lambda c, k: ""), 5, 0.7, 8, 3, 0,
                    verifiers=roles.verifier_index([{"prompt": "p"}]), runner=lambda f, i: [])


def test_likelihood_votes_follow_the_verdict_probability():
    class Backend:
        def choice_logprobs(self, convs, choices):
            # "good" responses: Yes much likelier; others: No much likelier
            return [[-0.01, -6.0] if "good" in c[0]["content"] else [-6.0, -0.01] for c in convs]

    class Gen:
        backend = Backend()

    j = roles.Judge("llm", Gen(), n=5, temperature=0.7, max_new_tokens=3, max_rounds=3, seed=0,
                    prefill="Final Judgement: ", style="likelihood")
    good, bad = j.judge_many([("p", "a good answer"), ("p", "a poor answer")])
    assert good["label"] is True and good["value"] == 1.0 and bad["label"] is False and bad["value"] == 0.0
    assert j.calls["likelihood_scores"] == 4 and j.calls["judgment_completions"] == 0
    cold = roles.Judge("llm", Gen(), n=5, temperature=0.0, max_new_tokens=3, max_rounds=3, seed=0,
                       prefill="Final Judgement: ", style="likelihood")  # temperature 0: the likelier verdict
    assert [r["label"] for r in cold.judge_many([("p", "a good answer"), ("p", "a poor answer")])] == [True, False]
    with pytest.raises(ValueError, match="needs judge_prefill"):
        roles.Judge("llm", Gen(), 5, 0.7, 3, 3, 0, style="likelihood")


@pytest.mark.parametrize("text, want", [
    ("I fixed the case.\nRefined response: [[start]] all lower now [[end]]", ("all lower now", "I fixed the case.\nRefined response:")),
    ("Refined response: [[start]] no end marker", ("no end marker", "Refined response:")),
    ("no markers at all", (None, "no markers at all")),
    ("[[start]]   [[end]]", (None, "")),
    # the refine prompt names the markers: a reflection mentioning them comes before the answer's own pair
    ("I will wrap it in [[start]] and [[end]] as asked.\n[[start]]The fix.[[end]]",
     ("The fix.", "I will wrap it in [[start]] and [[end]] as asked.")),
    ("[[start]]The fix.[[end]]\nI used [[start]] as told.", ("The fix.", "")),
    ("I use [[start]] and then: [[start]]cut off mid", ("cut off mid", "I use [[start]] and then:")),
])
def test_parse_refined(text, want):
    assert roles.parse_refined(text) == want


def test_refiner_sends_the_three_turns_and_the_primer():
    gen = ScriptedGen(lambda c, k: f"Refined response: [[start]] fixed {k} [[end]]")
    r = roles.Refiner(gen, temperature=0.7, max_new_tokens=32, seed=0, prefill="Refined response: [[start]]")
    out = r([("P", "Bad Answer", "Not lowercase.")], n=2)
    assert out == [[("fixed 0", "Refined response: [[start]] fixed 0 [[end]]"),
                    ("fixed 1", "Refined response: [[start]] fixed 1 [[end]]")]]
    conv = gen.requests[0][0][0]
    assert [m["role"] for m in conv] == ["user", "assistant", "user", "assistant"]
    assert conv[1]["content"] == "Not lowercase.\n\nFinal Judgement: No" and "Bad Answer" in conv[0]["content"]
    assert conv[3]["content"] == "Refined response: [[start]]" and r.calls["refine_completions"] == 2


def test_unparseable_and_cut_off_refinements_are_retried():
    class Gen(ScriptedGen):
        def hit_limit(self, texts, sp, prefill=""):
            return ["CUT" in t for t in texts]

    seeds = []

    def reply(conv, k):
        seed = gen.requests[-1][1].seed
        seeds.append(seed)
        tries = len({s for s in seeds})
        if "never" in conv[0]["content"]:
            return "I cannot."
        if tries == 1:  # first round: slot 0 unreadable, slot 1 cut off, slot 2 fine
            return ["no markers", "[[start]] half CUT", "[[start]]ok[[end]]"][k]
        return "[[start]]retry ok[[end]]"

    gen = Gen(reply)
    r = roles.Refiner(gen, temperature=0.7, max_new_tokens=32, seed=0, retries=2)
    (row, never) = r([("P", "fine answer", "c"), ("P", "never fixed", "c")], n=3)
    assert [t for t, _ in row] == ["retry ok", "retry ok", "ok"]
    assert [t for t, _ in never] == [None, None, None]
    # round 1: 6 candidates; 2 retries: 2 + 3 failed the first time, 3 still failed the second time
    assert r.calls["truncated"] == 1 and r.calls["retried"] == 5 + 3 and r.calls["recovered"] == 2
    assert r.calls["unparsed"] == 3 and r.calls["refine_completions"] == 6 + 5 + 3
    assert len({sp.seed for _, sp in gen.requests}) == 3          # every retry samples with fresh seeds
    none = roles.Refiner(Gen(reply), temperature=0.7, max_new_tokens=32, seed=0, retries=0)
    assert [t for t, _ in none([("P", "never fixed", "c")], n=2)[0]] == [None, None]


def test_hit_limit_flags_a_completion_cut_at_max_new_tokens(tmp_path):
    from autoif_lib.models import Generator, ModelSpec, SamplingParams

    gen = Generator(ModelSpec(backend="transformers", model="embedded", batch_size=2), progress=False)
    sp = SamplingParams(temperature=0.0, max_new_tokens=6)
    long_ = gen.generate([[{"role": "user", "content": "Write a long story about a dragon."}]], sp)[0][0]
    sp_big = SamplingParams(temperature=0.0, max_new_tokens=64)
    short = gen.generate([[{"role": "user", "content": "Reply with the single word: yes"}]], sp_big)[0][0]
    assert gen.hit_limit([long_], sp) == [True]
    assert gen.hit_limit([short], sp_big) == [False], short
    assert Generator(ModelSpec(backend="openai", model="m", base_url="http://x"), progress=False).hit_limit(["a"], sp) == [None]


def test_pick_roots_one_negative_per_prompt():
    votes = [{"id": f"{p}_{k}", "prompt_id": p, "prompt": p, "response": f"{p}{k}", "critique": "c", "value": v,
              "label": None if v is None else v > 0.5} for p, vals in (("a", [0.0, 1.0, 0.2]), ("b", [1.0, 1.0]),
                                                                         ("c", [None, 0.4])) for k, v in enumerate(vals)]
    roots = selfplay.pick_roots(votes, seed=0)
    assert [r["prompt_id"] for r in roots] == ["a", "c"]            # b has no negative
    assert roots[0]["response"] in ("a0", "a2") and roots[1]["response"] == "c1"  # c0 was dropped, not negative
    assert roots == selfplay.pick_roots(votes, seed=0)


def test_pipeline_wires_iterations():
    pipe = get_pipeline("spar")
    assert stage_name(2, "judge") == "09_t2_judge" and models_source(1) == "01_init"
    assert models_source(3) == "13_t2_refiner"
    assert pipe.stage("08_t2_sample").upstream == ("00_prompts", "07_t1_refiner")
    assert pipe.stage("12_t2_actor").upstream == ("07_t1_refiner", "11_t2_data")
    assert dict(pipe.stage("15_t3_judge").fixed) == {"iteration": 3}
    # iterations: 2 switches iteration 3 off
    from autoif_lib.recipes import load_recipe
    from autoif_lib.recipes import repo_root

    r = load_recipe(repo_root() / "params" / "spar" / "quickstart.yaml")
    on = [s.name for s in pipe.stages if s.is_enabled(r.stages[s.name])]
    assert "13_t2_refiner" in on and not any(s.startswith(("14_", "15_", "16_", "17_", "18_", "19_")) for s in on)
    # `iterations` only switches stages off: a 3-iteration recipe shares iterations 1-2 with a 2-iteration one
    r3 = load_recipe(repo_root() / "params" / "spar" / "quickstart.yaml", overrides={"common": {"iterations": 3}})
    shared = [s for s in pipe.order if r.stage_keys[s] == r3.stage_keys[s]]
    assert shared == pipe.order[:-1]  # all but the evaluation, which covers one more iteration
