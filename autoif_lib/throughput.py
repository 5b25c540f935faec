"""Generation throughput: the model layer vs raw ``model.generate`` vs one prompt at a time.

Used by notebook 00 (layer only) and ``bench/bench_generation.py`` (all three,
side by side in one process so the ratios are fair on a noisy machine).
Tokens are counted the same way for every method: re-tokenizing the text.
"""

from __future__ import annotations

import time

DEMO_PROMPTS = [
    "Write a haiku about rain.",
    "List three uses of a paperclip.",
    "Explain in one sentence why the sky is blue.",
    "Give me a short tip for staying focused while studying.",
    "What is the capital of France? Answer in one word.",
    "Write a two-line poem about coffee.",
    "Suggest a name for a friendly robot.",
    "Describe a cat to someone who has never seen one.",
    "How do I boil an egg?",
    "Write a polite email subject line asking for a meeting.",
    "Name a fruit that is yellow.",
    "Give one reason to learn a second language.",
    "What should I pack for a day at the beach?",
    "Summarize the plot of Cinderella in two sentences.",
    "Write a slogan for a bicycle shop.",
    "Why do we need sleep?",
]


def count_tokens(tokenizer, texts: list[str]) -> int:
    return sum(len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"])


def measure_layer(generator, prompts: list[str], sp) -> dict:
    """Tokens/s of ``generator.generate`` (give it a Generator without a cache)."""
    t0 = time.perf_counter()
    outs = generator.generate(prompts, sp, desc="throughput")
    secs = time.perf_counter() - t0
    texts = [o for group in outs for o in group]
    toks = count_tokens(generator.backend.tokenizer, texts)
    return {"method": "model layer", "seconds": round(secs, 3), "new_tokens": toks,
            "tokens_per_s": round(toks / secs, 2), "completions": len(texts)}


def measure_raw(backend, prompts: list[str], sp, batch_size: int) -> dict:
    """Tokens/s of plain batched ``model.generate`` in input order, at ``batch_size``."""
    import torch

    tok, model = backend.tokenizer, backend.model
    texts_out: list[str] = []
    t0 = time.perf_counter()
    for i in range(0, len(prompts), batch_size):
        chunk = prompts[i:i + batch_size]
        texts = [tok.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True,
                                         tokenize=False) for p in chunk]
        enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(backend.device)
        kw = dict(max_new_tokens=sp.max_new_tokens, pad_token_id=tok.pad_token_id,
                  repetition_penalty=sp.repetition_penalty)
        kw.update(do_sample=False, temperature=None, top_p=None, top_k=None) if sp.greedy else kw.update(
            do_sample=True, temperature=sp.temperature, top_p=sp.top_p, top_k=0)
        with torch.inference_mode():
            out = model.generate(**enc, **kw)
        texts_out += tok.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True,
                                      clean_up_tokenization_spaces=False)
    secs = time.perf_counter() - t0
    toks = count_tokens(tok, texts_out)
    return {"method": f"raw generate (batch {batch_size})" if batch_size > 1 else "one prompt at a time",
            "seconds": round(secs, 3), "new_tokens": toks, "tokens_per_s": round(toks / secs, 2),
            "completions": len(texts_out)}
