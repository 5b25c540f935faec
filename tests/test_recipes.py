"""Recipes that compose: base chains, deep merges with explicit replace/delete, TRL types, show."""

from __future__ import annotations

import pytest

from autoif_lib.params import ParamsError
from autoif_lib.recipes import load_recipe, show


def test_three_level_base_chain_resolves_fully(write_yaml, root):
    # paper_qwen2_7b_strong_to_weak -> paper_base; one more level on top of it
    r = load_recipe(write_yaml("base: $ROOT/params/autoif/paper_qwen2_7b_strong_to_weak.yaml\n"
                               "experiment: abl\nstages:\n  06_verify_score: {pass_threshold: 0.8}\n"))
    assert r.stages["06_verify_score"].pass_threshold == 0.8
    assert r.stages["01_augment"].n_calls == 100              # from the grandparent paper_base.yaml
    assert r.stages["08_sft"].num_gpus == 8                    # grandparent's common block
    assert r.stages["05_responses"].supervisor.model == "Qwen/Qwen2-72B-Instruct"  # parent
    assert [p.rsplit("/", 1)[-1] for p in r.chain] == ["paper_base.yaml", "paper_qwen2_7b_strong_to_weak.yaml",
                                                        "recipe.yaml"]


def test_partial_dict_override_keeps_the_base_keys(write_yaml):
    r = load_recipe(write_yaml("base: $ROOT/params/autoif/paper_base.yaml\nexperiment: x\n"
                               "stages:\n  09_dpo:\n    dpo: {beta: 0.1}\n"))
    dpo = r.stages["09_dpo"].dpo
    assert dpo["beta"] == 0.1
    assert dpo["learning_rate"] == 5e-7 and dpo["num_train_epochs"] == 2 and dpo["per_device_train_batch_size"] == 1


def test_replace_and_delete_tags(write_yaml):
    r = load_recipe(write_yaml("base: $ROOT/params/autoif/paper_base.yaml\nexperiment: x\n"
                               "stages:\n  09_dpo:\n    dpo: !replace {beta: 0.1, max_steps: 3}\n"
                               "  08_sft:\n    sft:\n      warmup_steps: !delete\n      max_steps: 2\n"))
    assert r.stages["09_dpo"].dpo == {"beta": 0.1, "max_steps": 3}
    sft = r.stages["08_sft"].sft
    assert "warmup_steps" not in sft and sft["max_steps"] == 2 and sft["learning_rate"] == 7e-6


def test_yaml_float_without_dot_arrives_as_float(write_yaml):
    # YAML 1.1 reads 5e-7 (no dot) as the string '5e-7'
    r = load_recipe(write_yaml("base: $ROOT/params/autoif/smoke.yaml\nexperiment: x\n"
                               "stages:\n  09_dpo:\n    dpo: {learning_rate: 5e-7, beta: 1}\n"
                               "  06_verify_score: {pass_threshold: 8e-1}\n"))
    dpo = r.stages["09_dpo"].dpo
    assert dpo["learning_rate"] == 5e-7 and type(dpo["learning_rate"]) is float
    assert type(dpo["beta"]) is float
    assert r.stages["06_verify_score"].pass_threshold == 0.8


def test_trl_value_of_the_wrong_type_fails_naming_the_key(write_yaml):
    p = write_yaml("base: $ROOT/params/autoif/smoke.yaml\nexperiment: x\nstages:\n  09_dpo:\n    dpo: {learning_rate: fast}\n")
    with pytest.raises(ParamsError, match=r"stages\.09_dpo.*dpo\.learning_rate: expected float, got str 'fast'"):
        load_recipe(p)


def test_base_cycle_fails_naming_the_files(write_yaml):
    write_yaml("base: b.yaml\nexperiment: a\n", "a.yaml")
    b = write_yaml("base: a.yaml\nexperiment: b\n", "b.yaml")
    with pytest.raises(ParamsError, match=r"cycle: .*b\.yaml -> .*a\.yaml -> .*b\.yaml"):
        load_recipe(b)


def test_show_prints_every_resolved_value(write_yaml):
    r = load_recipe(write_yaml("base: $ROOT/params/autoif/paper_qwen2_7b_strong_to_weak.yaml\nexperiment: abl\n"))
    text = show(r)
    import yaml

    doc = yaml.safe_load(text)
    assert doc["pipeline"] == "autoif" and doc["run_id"] == r.run_id
    assert doc["stages"]["01_augment"]["n_calls"] == 100
    assert doc["stages"]["09_dpo"]["dpo"]["learning_rate"] == 5e-7
    assert doc["stages"]["02_verifiers"]["key"] == r.stage_keys["02_verifiers"]


def test_recipes_differing_in_one_stage_share_its_upstreams(write_yaml):
    a = load_recipe(write_yaml("base: $ROOT/params/autoif/quickstart.yaml\n", "a.yaml"))
    b = load_recipe(write_yaml("base: $ROOT/params/autoif/quickstart.yaml\nexperiment: other\n"
                               "stages:\n  06_verify_score: {pass_threshold: 0.8}\n", "b.yaml"))
    ka, kb = a.stage_keys, b.stage_keys
    order = a.pipeline.order
    i = order.index("06_verify_score")
    assert all(ka[s] == kb[s] for s in order[:i])                 # 00-05: the same folders
    assert all(ka[s] != kb[s] for s in ["06_verify_score", *a.pipeline.downstream("06_verify_score")])
    assert a.stage_dir("05_responses") == b.stage_dir("05_responses")
    # 00_environment feeds nothing: changing it changes only its own key
    c = load_recipe(write_yaml("base: $ROOT/params/autoif/quickstart.yaml\nstages:\n  00_environment: {n_prompts: 4}\n",
                               "c.yaml"))
    assert [s for s in order if c.stage_keys[s] != ka[s]] == ["00_environment"]


def test_unknown_pipeline_is_a_clear_error(write_yaml):
    with pytest.raises(ParamsError, match="unknown pipeline 'autof'.*did you mean 'autoif'"):
        load_recipe(write_yaml("pipeline: autof\nexperiment: x\n"))


def test_spar_paper_recipe_keeps_the_papers_training_settings(root):
    # The recipe sets only {bf16, gradient_checkpointing}; the stage defaults hold the paper's values and must survive.
    r = load_recipe(root / "params/spar/paper_llama3_8b.yaml")
    for actor in ("06_t1_actor", "12_t2_actor", "18_t3_actor"):
        p = r.stages[actor]
        dpo = p.dpo
        assert dpo["loss_type"] == ["sigmoid", "sft"] and dpo["loss_weights"] == [1.0, 0.1]
        assert dpo["learning_rate"] == 2e-7 and dpo["num_train_epochs"] == 1 and dpo["max_length"] == 2048
        assert dpo["warmup_steps"] == 0.1 and dpo["lr_scheduler_type"] == "linear" and dpo["beta"] == 0.1
        assert dpo["bf16"] is True and dpo["gradient_checkpointing"] is True
        assert p.batch_plan() == {"per_device": 2, "accumulation": 2, "world": 8, "global": 32}
    for refiner in ("07_t1_refiner", "13_t2_refiner", "19_t3_refiner"):
        p = r.stages[refiner]
        sft = p.sft
        assert sft["learning_rate"] == 2e-6 and sft["num_train_epochs"] == 5 and sft["max_length"] == 4096
        assert sft["lr_scheduler_type"] == "constant_with_warmup" and sft["bf16"] is True
        assert p.batch_plan() == {"per_device": 2, "accumulation": 4, "world": 8, "global": 64}
    assert r.stages["01_init"].sft["learning_rate"] == 2e-6 and r.stages["01_init"].batch_plan()["global"] == 64


def test_dict_param_merges_over_the_stage_default_and_tags_reach_it(write_yaml):
    r = load_recipe(write_yaml("base: $ROOT/params/spar/smoke.yaml\nexperiment: x\nstages:\n"
                               "  12_t2_actor:\n    dpo:\n      beta: 0.5\n      loss_weights: !delete\n"
                               "  13_t2_refiner:\n    sft: !replace {max_steps: 1}\n"))
    dpo = r.stages["12_t2_actor"].dpo
    assert dpo["beta"] == 0.5 and dpo["loss_type"] == ["sigmoid", "sft"] and "loss_weights" not in dpo
    assert dpo["learning_rate"] == 5e-6                       # quickstart.yaml's, through the chain
    assert dpo["num_train_epochs"] == 1 and dpo["lr_scheduler_type"] == "linear"  # the stage default underneath
    assert r.stages["13_t2_refiner"].sft == {"max_steps": 1}  # !replace: nothing of the default
    assert r.stages["06_t1_actor"].dpo["loss_type"] == ["sigmoid", "sft"]  # smoke.yaml's plain mapping merged


def test_replace_survives_a_child_recipe_merging_into_it(write_yaml):
    # paper_base's parent sets nothing; here a parent replaces, its child adds one key: still no default keys
    write_yaml("base: $ROOT/params/autoif/smoke.yaml\nexperiment: p\nstages:\n  09_dpo:\n    dpo: !replace {beta: 0.2}\n",
               "parent.yaml")
    r = load_recipe(write_yaml("base: parent.yaml\nexperiment: c\nstages:\n  09_dpo:\n    dpo: {max_steps: 2}\n"))
    assert r.stages["09_dpo"].dpo == {"beta": 0.2, "max_steps": 2}


def test_global_batch_drops_the_default_accumulation_but_not_the_recipes(write_yaml):
    r = load_recipe(write_yaml("base: $ROOT/params/spar/smoke.yaml\nexperiment: x\nstages:\n"
                               "  06_t1_actor: {global_batch_size: 8}\n"))
    p = r.stages["06_t1_actor"]
    assert "gradient_accumulation_steps" not in p.dpo and p.batch_plan()["accumulation"] == 4
    with pytest.raises(ParamsError, match=r"gradient_accumulation_steps: derived from global_batch_size"):
        load_recipe(write_yaml("base: $ROOT/params/spar/smoke.yaml\nexperiment: x\nstages:\n"
                               "  06_t1_actor: {global_batch_size: 8, dpo: {gradient_accumulation_steps: 2}}\n"))


def test_show_prints_the_merged_dict(write_yaml, root):
    import yaml

    doc = yaml.safe_load(show(load_recipe(root / "params/spar/paper_llama3_8b.yaml")))
    assert doc["stages"]["06_t1_actor"]["dpo"]["loss_type"] == ["sigmoid", "sft"]
    assert doc["stages"]["06_t1_actor"]["batch"] == "per-device 2 x accumulation 2 x world 8 = 32"
