"""Contamination checks: exact n-gram overlap counts, near-duplicates, a run's training prompts, the notebook."""

from __future__ import annotations

import nbformat
import pytest

from autoif_lib import contamination as C
from autoif_lib import io

IFEVAL_LIKE = [
    "Write a 300+ word summary of the wikipedia page about the Moon. Do not use any commas and highlight at least 3 sections.",
    "Write a story about a cat in exactly four paragraphs, separated by the markdown divider.",
]


def test_thirteen_gram_overlap_counts_both_sides_exactly():
    copied = "Please " + IFEVAL_LIKE[0].upper().replace(",", " ,")  # same words, other case and punctuation
    twelve = " ".join(C.words(IFEVAL_LIKE[0])[:12]) + " and then something else entirely"
    train = [copied, twelve, "Answer in French and use no capital letters."]
    rep = C.ngram_overlap(train, IFEVAL_LIKE, n=13)
    assert rep["hits"] == [{"train": 0, "test": [0]}]  # 12 shared words are not a 13-gram
    assert (rep["train_contaminated"], rep["test_hit"]) == (1, 1)
    assert rep["train_pct"] == pytest.approx(100 / 3) and rep["test_pct"] == pytest.approx(50.0)


def test_near_duplicates_find_a_light_rephrase_and_not_an_unrelated_prompt():
    rephrase = "Write a story about a dog in exactly four paragraphs, separated by the markdown divider."
    unrelated = "List three prime numbers and explain why each is prime."
    nd = C.near_duplicates([unrelated, rephrase], IFEVAL_LIKE, threshold=0.5)
    assert [(r["train"], r["test"]) for r in nd] == [(1, 1)]
    # 15 words -> 13 trigrams each; "cat"/"dog" changes the 3 that hold it: 10 shared of 16 distinct
    assert nd[0]["similarity"] == pytest.approx(10 / 16, abs=1e-4)
    assert C.similarity_profile([unrelated, rephrase], IFEVAL_LIKE) == [0.0, pytest.approx(10 / 16, abs=1e-4)]


def _fake_run(tmp_path, ifeval_prompt):
    run = tmp_path / "outputs" / "exp" / "run-1"
    export = tmp_path / "store" / "07_export"
    export.mkdir(parents=True)
    run.mkdir(parents=True)
    (run / "07_export").symlink_to(export)
    io.write_json(run / "recipe.json", {"pipeline": "autoif"})
    io.write_jsonl(export / "sft_messages.jsonl", [
        {"messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": ifeval_prompt},
                      {"role": "assistant", "content": "ok"}]},
        {"messages": [{"role": "user", "content": "Name two rivers in Peru, in lowercase only."},
                      {"role": "assistant", "content": "amazon, ucayali"}]}])
    io.write_jsonl(export / "dpo_trl.jsonl", [
        {"prompt": [{"role": "user", "content": "Name two rivers in Peru, in lowercase only."}],
         "chosen": [{"role": "assistant", "content": "a"}], "rejected": [{"role": "assistant", "content": "B"}]}])
    return run


def test_training_prompts_of_a_run_are_the_distinct_user_turns(tmp_path):
    run = _fake_run(tmp_path, IFEVAL_LIKE[1])
    tp = C.training_prompts(run)
    assert tp["pipeline"] == "autoif"
    assert tp["prompts"] == [IFEVAL_LIKE[1], "Name two rivers in Peru, in lowercase only."]
    assert sorted(p.split("/")[-1] for p in tp["files"]) == ["dpo_trl.jsonl", "sft_messages.jsonl"]
    with pytest.raises(FileNotFoundError, match="no such run folder"):
        C.training_prompts(tmp_path / "missing")


def test_contamination_notebook_flags_a_copied_ifeval_prompt(tmp_path, root):
    import papermill as pm

    ifeval = C.ifeval_prompts()
    assert len(ifeval) == 541
    run = _fake_run(tmp_path, ifeval[7])
    src = root / "notebooks" / "analysis" / "contamination.ipynb"
    nb0 = nbformat.read(str(src), as_version=4)
    assert "parameters" in nb0.cells[1].metadata.get("tags", [])
    assert not any(c.get("outputs") for c in nb0.cells if c.cell_type == "code"), "commit notebooks without outputs"
    out = tmp_path / "out.ipynb"
    pm.execute_notebook(str(src), str(out), parameters={"run_dir": str(run), "out_dir": str(tmp_path / "rep")},
                        kernel_name="autoif-workbench", cwd=str(root), progress_bar=False)
    rep = io.read_json(tmp_path / "rep" / "contamination.json")
    assert rep["ngram"]["n_train"] == 2 and rep["ngram"]["n_test"] == 541
    assert rep["ngram"]["train_contaminated"] == 1 and rep["ngram"]["hits"][0]["train"] == 0
    assert 7 in rep["ngram"]["hits"][0]["test"]
    assert rep["near_duplicates"]["pairs"][0]["similarity"] == 1.0
    nb = nbformat.read(str(out), as_version=4)
    assert not [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.get("output_type") == "error"]
