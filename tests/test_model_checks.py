"""Model settings checked before any work (`autoif check`, `autoif run`, sweep validation): each fault that
would fail at engine start, or at model load, fails at load time naming the key and the reason."""

from __future__ import annotations

import json
import shutil

import pytest

from autoif_lib import cli
from autoif_lib.embedded import embedded_model_dir
from autoif_lib.models.backends import ChatTemplateMissing, load_tokenizer
from autoif_lib.models.checks import KNOWN_MODELS, check_spec
from autoif_lib.models.spec import ModelSpec
from autoif_lib.params import ParamsError, build
from autoif_lib.recipes import load_recipe


def _check(path, capsys) -> tuple[int, str]:
    rc = cli.main(["check", str(path)])
    cap = capsys.readouterr()
    return rc, cap.out + cap.err


@pytest.fixture
def base_model(tmp_path):
    """The embedded model's files without any chat template: what a base model looks like."""
    d = tmp_path / "base_model"
    shutil.copytree(embedded_model_dir(), d)
    (d / "chat_template.jinja").unlink()
    cfg = json.loads((d / "tokenizer_config.json").read_text())
    cfg.pop("chat_template", None)
    (d / "tokenizer_config.json").write_text(json.dumps(cfg))
    return d


def test_every_shipped_recipe_passes_its_own_check(root, capsys):
    recipes = sorted((root / "params" / "autoif").glob("*.yaml")) + sorted((root / "params" / "spar").glob("*.yaml"))
    assert len(recipes) >= 12
    for p in recipes:
        rc, out = _check(p, capsys)
        assert rc == 0, out


def test_tensor_parallel_8_for_qwen2_7b_fails_naming_key_and_heads(write_yaml, capsys):
    p = write_yaml("base: $ROOT/params/autoif/paper_base.yaml\nexperiment: x\ncommon:\n"
                   "  generation: {backend: vllm, model: Qwen/Qwen2-7B, tensor_parallel_size: 8}\n")
    rc, out = _check(p, capsys)
    assert rc == 2
    assert "common.generation.tensor_parallel_size: 8 does not divide the 28 attention heads of Qwen/Qwen2-7B" in out
    assert "[1, 2, 4]" in out  # the sizes that would work
    # 4 divides both the 28 heads and the 4 KV heads
    load_recipe(write_yaml("base: $ROOT/params/autoif/paper_base.yaml\nexperiment: x\ncommon:\n"
                           "  generation: {backend: vllm, model: Qwen/Qwen2-7B, tensor_parallel_size: 4}\n"))


def test_tensor_parallel_is_read_from_a_local_config(tmp_path):
    d = tmp_path / "m"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"num_attention_heads": 9, "num_key_value_heads": 3}))
    (d / "chat_template.jinja").write_text("{{ messages }}")
    with pytest.raises(ParamsError, match=r"g\.tensor_parallel_size: 2 does not divide the 9 attention heads"):
        check_spec(ModelSpec(backend="vllm", model=str(d), tensor_parallel_size=2), "g")
    assert check_spec(ModelSpec(backend="vllm", model=str(d), tensor_parallel_size=3), "g") == []
    (d / "config.json").write_text(json.dumps({"num_attention_heads": 12, "num_key_value_heads": 3}))
    with pytest.raises(ParamsError, match="3 KV heads"):  # 12 % 2 == 0, but 3 KV heads cannot be split in 2
        check_spec(ModelSpec(backend="vllm", model=str(d), tensor_parallel_size=2), "g")


def test_a_model_not_on_this_machine_is_a_note_not_an_error():
    notes = check_spec(ModelSpec(backend="vllm", model="someone/unknown-model", tensor_parallel_size=8), "g")
    assert any("unknown-model" in n and "tensor_parallel_size 8" in n for n in notes)
    assert any("chat template" in n for n in notes)


def test_parallel_sizes_on_a_backend_without_them_fail(write_yaml, capsys):
    p = write_yaml("base: $ROOT/params/spar/smoke.yaml\nexperiment: x\ncommon:\n"
                   "  generation: {backend: transformers, model: embedded, data_parallel_size: 8}\n")
    rc, out = _check(p, capsys)
    assert rc == 2 and "common.generation.data_parallel_size: a vllm setting" in out
    # on vLLM, data parallelism is replicas in processes of their own: accepted
    load_recipe(write_yaml("base: $ROOT/params/spar/smoke.yaml\nexperiment: x\ncommon:\n"
                           "  generation: {backend: vllm, model: embedded, data_parallel_size: 8}\n"))


def test_a_base_model_without_chat_template_fails_unless_one_is_named(write_yaml, base_model, capsys):
    p = write_yaml(f"base: $ROOT/params/autoif/smoke.yaml\nexperiment: x\ncommon:\n"
                   f"  generation: {{backend: vllm, model: {base_model}}}\n")
    rc, out = _check(p, capsys)
    assert rc == 2 and f"common.generation: model '{base_model}' has no chat template" in out
    assert "common.generation.chat_template" in out
    ok = write_yaml(f"base: $ROOT/params/autoif/smoke.yaml\nexperiment: x\ncommon:\n"
                    f"  generation: {{backend: vllm, model: {base_model}, chat_template: embedded}}\n", "ok.yaml")
    assert _check(ok, capsys)[0] == 0
    # the policy a training stage starts from, too (Meta-Llama-3-8B is known to ship none)
    assert KNOWN_MODELS["meta-llama/Meta-Llama-3-8B"]["chat_template"] is False
    p = write_yaml("base: $ROOT/params/autoif/smoke.yaml\nexperiment: x\ncommon:\n  base_model: meta-llama/Meta-Llama-3-8B\n",
                   "llama.yaml")
    rc, out = _check(p, capsys)
    assert rc == 2 and "stages.08_sft: model 'meta-llama/Meta-Llama-3-8B' has no chat template" in out
    assert "common.chat_template sets it for every stage" in out
    ok = write_yaml("base: $ROOT/params/autoif/smoke.yaml\nexperiment: x\ncommon:\n  base_model: meta-llama/Meta-Llama-3-8B\n"
                    "  chat_template: meta-llama/Meta-Llama-3-8B-Instruct\n", "llama_ok.yaml")
    assert _check(ok, capsys)[0] == 0


def test_a_missing_chat_template_file_fails(write_yaml, capsys):
    p = write_yaml("base: $ROOT/params/autoif/smoke.yaml\nexperiment: x\ncommon:\n"
                   "  supervisor: {model: embedded, chat_template: templates/nowhere.jinja}\n")
    rc, out = _check(p, capsys)
    assert rc == 2 and "common.supervisor.chat_template: file not found: 'templates/nowhere.jinja'" in out


def test_a_missing_local_model_path_fails_naming_key_and_path(write_yaml, capsys):
    p = write_yaml("base: $ROOT/params/autoif/smoke.yaml\nexperiment: x\ncommon:\n"
                   "  supervisor: {model: /nonexistent/model}\n")
    rc, out = _check(p, capsys)
    assert rc == 2 and "common.supervisor.model: model folder not found: '/nonexistent/model'" in out
    p = write_yaml("base: $ROOT/params/autoif/smoke.yaml\nexperiment: x\ncommon:\n  base_model: ~/no/such/policy\n", "b.yaml")
    rc, out = _check(p, capsys)
    assert rc == 2 and "common.base_model: model folder not found: '~/no/such/policy'" in out


def test_temperature_above_two_fails():
    with pytest.raises(ParamsError, match=r"temperature: must be <= 2.0, got 2.5"):
        build(__import__("autoif_lib.models.spec", fromlist=["SamplingParams"]).SamplingParams, {"temperature": 2.5})


def test_stage_temperature_above_two_fails_at_load(write_yaml, capsys):
    p = write_yaml("base: $ROOT/params/spar/smoke.yaml\nexperiment: x\nstages:\n  02_t1_sample: {temperature: 3.0}\n")
    rc, out = _check(p, capsys)
    assert rc == 2 and "stages.02_t1_sample.temperature: must be <= 2.0, got 3.0" in out


def test_likelihood_judging_needs_a_backend_that_scores(write_yaml, capsys):
    p = write_yaml("base: $ROOT/params/spar/smoke.yaml\nexperiment: x\ncommon:\n"
                   "  generation: {backend: openai, model: m}\n")
    rc, out = _check(p, capsys)
    assert rc == 2 and "judge_style: likelihood scores the refiner's own P(Yes)/P(No)" in out
    load_recipe(write_yaml("base: $ROOT/params/spar/smoke.yaml\nexperiment: x\ncommon:\n"
                           "  generation: {backend: openai, model: m}\n  judge_style: generate\n", "g.yaml"))


def test_load_tokenizer_applies_the_named_template(base_model):
    with pytest.raises(ChatTemplateMissing, match="has no chat template"):
        load_tokenizer(ModelSpec(model=str(base_model)))
    tok = load_tokenizer(ModelSpec(model=str(base_model), chat_template="embedded"))
    own = load_tokenizer(ModelSpec(model="embedded"))
    msgs = [{"role": "user", "content": "hi"}]
    assert tok.apply_chat_template(msgs, tokenize=False) == own.apply_chat_template(msgs, tokenize=False)
    literal = load_tokenizer(ModelSpec(model=str(base_model), chat_template="{% for m in messages %}<{{ m['content'] }}>{% endfor %}"))
    assert literal.apply_chat_template(msgs, tokenize=False) == "<hi>"


def test_a_named_template_is_part_of_the_cache_identity(base_model):
    from autoif_lib.models.backends import model_fingerprint

    a = model_fingerprint(ModelSpec(model=str(base_model)))
    b = model_fingerprint(ModelSpec(model=str(base_model), chat_template="embedded"))
    assert a != b and b.endswith(":template=embedded")
