"""NLI backends for the back-translation consistency filter (stage 04).

Both answer: given (premise = original instruction, hypothesis = back-translated
instruction), is it ``entailment``, ``neutral`` or ``contradiction``?

* ``CrossEncoderNLI``: an NLI sequence classifier through transformers
  (mDeBERTa-xnli style) for users who have the weights; the label order is read
  from the model's ``config.id2label``, never assumed.
* ``LLMJudgeNLI``: the generation model itself judges (the embedded default,
  and AutoIF's self-alignment setting). Unparseable replies come back as None
  and are counted by the caller.
"""

from __future__ import annotations

from typing import Sequence

from .. import judge
from . import parsing, prompts

LABELS = ("entailment", "neutral", "contradiction")


def _canonical(label: str) -> str | None:
    label = label.lower()
    for name in LABELS:
        if label.startswith(name[:7]):  # "entail", "contrad", "neutral"
            return name
    return None


class CrossEncoderNLI:
    name = "cross_encoder"

    def __init__(self, model: str, device: str = "auto", batch_size: int = 16):
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.torch = torch
        self.device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        self.tokenizer = AutoTokenizer.from_pretrained(model)
        if self.tokenizer.pad_token is None:  # decoder-style classifiers ship without one
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForSequenceClassification.from_pretrained(model).to(self.device).eval()
        id2label = getattr(self.model.config, "id2label", None) or {}
        self.index_to_label = {int(i): _canonical(str(l)) for i, l in id2label.items()}
        if sorted(filter(None, self.index_to_label.values())) != sorted(LABELS):
            raise ValueError(f"{model}: config.id2label {id2label} does not name entailment/neutral/contradiction")
        self.batch_size = batch_size
        self.model_name = model

    def predict(self, pairs: Sequence[tuple[str, str]]) -> list[str | None]:
        out: list[str | None] = []
        for i in range(0, len(pairs), self.batch_size):
            chunk = pairs[i:i + self.batch_size]
            enc = self.tokenizer([p for p, _ in chunk], [h for _, h in chunk], truncation=True, padding=True,
                                 return_tensors="pt").to(self.device)
            with self.torch.inference_mode():
                logits = self.model(**enc).logits
            out += [self.index_to_label[int(k)] for k in logits.argmax(-1).tolist()]
        return out


class LLMJudgeNLI:
    """The generation model as NLI judge.

    ``mode="likelihood"`` (where the backend can score text: transformers) ranks the three
    labels by their log-probability after the primed ``Label: `` and always yields a label;
    ``mode="generate"`` (any backend) parses a generated reply and may yield None.
    """

    name = "llm"

    def __init__(self, generator, sampling, mode: str = "auto"):
        self.generator = generator
        self.sampling = sampling
        self.raw: list = []
        self.mode = ("likelihood" if judge.can_score(generator) else "generate") if mode == "auto" else mode

    def predict(self, pairs: Sequence[tuple[str, str]]) -> list[str | None]:
        convs = [prompts.nli(p, h) for p, h in pairs]
        if self.mode == "likelihood":
            labels, self.raw = judge.choose(self.generator, convs, LABELS)
            return labels
        outs = self.generator.generate(convs, self.sampling, desc="nli judge")
        self.raw = [o[0] for o in outs]
        return [parsing.parse_nli_label(t) for t in self.raw]


def make_judge(backend: str, model: str, generator, seed: int):
    """The NLI judge stage 04 names: a cross-encoder classifier, or the supervisor as LLM judge."""
    from ..models import SamplingParams

    if backend == "cross_encoder":
        return CrossEncoderNLI(model)
    return LLMJudgeNLI(generator, SamplingParams(temperature=0.0, max_new_tokens=12, seed=seed))
