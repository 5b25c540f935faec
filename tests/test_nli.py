"""NLI backends: the cross-encoder reads its label order from the model config; the LLM judge parses."""

from __future__ import annotations

import pytest

from autoif_lib.autoif import nli
from autoif_lib.models import SamplingParams


def _tiny_classifier(path, id2label, favour):
    from transformers import AutoTokenizer, LlamaConfig, LlamaForSequenceClassification

    from autoif_lib.embedded import embedded_model_dir

    tok = AutoTokenizer.from_pretrained(embedded_model_dir())
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=2, num_labels=3, id2label=id2label,
                      label2id={v: k for k, v in id2label.items()}, pad_token_id=tok.pad_token_id)
    model = LlamaForSequenceClassification(cfg)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return model


@pytest.mark.parametrize("order", [("entailment", "neutral", "contradiction"), ("CONTRADICTION", "Entailment", "neutral")])
def test_cross_encoder_reads_label_order_from_config(tmp_path, order, monkeypatch):
    import torch

    id2label = {i: l for i, l in enumerate(order)}
    _tiny_classifier(tmp_path, id2label, favour=0)
    enc = nli.CrossEncoderNLI(str(tmp_path), device="cpu")
    assert set(enc.index_to_label.values()) == set(nli.LABELS)
    # Force logits so index 0 wins, then index 2: the names must follow the config, not a fixed order.
    for idx in (0, 2):
        def fake_forward(*a, _idx=idx, **k):
            n = k["input_ids"].shape[0]
            logits = torch.zeros(n, 3)
            logits[:, _idx] = 5.0
            return type("Out", (), {"logits": logits})()
        monkeypatch.setattr(enc, "model", fake_forward)
        labels = enc.predict([("Answer in lowercase.", "Write only lowercase letters."), ("a b c", "d e f")])
        assert labels == [order[idx].lower()] * 2


def test_cross_encoder_rejects_non_nli_labels(tmp_path):
    _tiny_classifier(tmp_path, {0: "positive", 1: "negative", 2: "mixed"}, favour=0)
    with pytest.raises(ValueError, match="does not name entailment/neutral/contradiction"):
        nli.CrossEncoderNLI(str(tmp_path), device="cpu")


def test_llm_judge_parses_and_keeps_raw():
    class Gen:
        def generate(self, convs, sp, desc=""):
            assert "Label: entailment" in convs[0][0]["content"]
            return [["Label: contradiction"], ["I think yes, entailment."], ["???"]]

    j = nli.LLMJudgeNLI(Gen(), SamplingParams(temperature=0.0))
    assert j.predict([("a", "b")] * 3) == ["contradiction", "entailment", None]
    assert j.raw[2] == "???"


def test_llm_judge_likelihood_mode_always_gives_a_label():
    class Backend:
        def choice_logprobs(self, convs, choices):
            assert convs[0][-1] == {"role": "assistant", "content": "Label: "} and list(choices) == list(nli.LABELS)
            return [[-1.0, -2.0, -3.0], [-3.0, -2.0, -0.5]]

    class Gen:
        backend = Backend()

    j = nli.LLMJudgeNLI(Gen(), SamplingParams(temperature=0.0))
    assert j.mode == "likelihood"
    assert j.predict([("a", "b"), ("c", "d")]) == ["entailment", "contradiction"]


def test_choice_logprobs_on_the_embedded_model():
    from autoif_lib.models import Generator, ModelSpec

    g = Generator(ModelSpec(batch_size=4), None, progress=False)
    conv = [{"role": "user", "content": "What is the capital of France? Answer with one word."},
            {"role": "assistant", "content": "The answer is:"}]
    scores = g.backend.choice_logprobs([conv, conv], ["Paris", "Zzyzx", "Berlin"])
    assert scores[0] == pytest.approx(scores[1], abs=1e-3)  # batch position does not matter
    assert scores[0][0] > scores[0][1] and scores[0][0] > scores[0][2]
    assert all(s < 0 for s in scores[0])


def test_choice_logprobs_with_a_shared_prefix_cache_equal_a_full_pass():
    """The conversation is run once and its KV cache reused per choice: the same numbers as scoring each
    full sequence in one pass, within fp32 rounding."""
    import torch

    from autoif_lib.models import Generator, ModelSpec

    b = Generator(ModelSpec(batch_size=1, dtype="float32"), None, progress=False).backend
    conv = [{"role": "user", "content": "What is the capital of France?"}, {"role": "assistant", "content": "Answer:"}]
    choices = ["Paris", "Berlin", "Zzyzx"]
    got = b.choice_logprobs([conv], choices)[0]
    prefix = b.render(conv).rstrip()
    p_ids = b.tokenizer(prefix, add_special_tokens=False)["input_ids"]
    want = []
    for ch in choices:
        ids = b.tokenizer(f"{prefix} {ch}", add_special_tokens=False)["input_ids"]
        k = 0
        while k < min(len(p_ids), len(ids) - 1) and p_ids[k] == ids[k]:
            k += 1
        with torch.inference_mode():
            lp = torch.log_softmax(b.model(input_ids=torch.tensor([ids])).logits[0].float(), -1)
        want.append(float(sum(lp[t - 1, ids[t]] for t in range(k, len(ids)))))
    assert got == pytest.approx(want, abs=1e-4)  # fp32: ~1e-6 seen
    assert got[0] > got[1] > got[2]
