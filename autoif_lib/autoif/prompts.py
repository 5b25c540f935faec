"""Every prompt the pipeline sends, in one place, written for this project.

Each builder returns a chat conversation (a list of messages). Keeping them
here makes prompt ablations a one-file diff, and lets the dataset card quote
exactly what the supervision model was asked.
"""

from __future__ import annotations

from typing import Sequence

from ..instruction_sets import combine_turn  # the one user-turn layout every method trains and evaluates on

Messages = list[dict]

# What self-instruct must not produce: constraints a program cannot check.
_UNCHECKABLE = (
    "tone, mood or style (\"sound excited\", \"be formal\")",
    "figures of speech (\"use a metaphor in every sentence\")",
    "personas or imitation (\"answer like a pirate\")",
    "translation into another language or dialect",
    "facts or topics (\"only mention vegetables\")",
)


def augment(examples: Sequence[str], n_new: int) -> Messages:
    """Self-instruct: ask for new instructions about a response's *form* that code can verify.

    The reply is primed with "- " (a final assistant message): small models then write a list
    instead of an essay, and large ones are unaffected.
    """
    shown = "\n".join(f"- {e}" for e in examples)
    banned = "; ".join(_UNCHECKABLE)
    return [{"role": "user", "content": (
        "Here are rules about the FORM of a written answer. A short Python program can check each one "
        f"by reading only the answer's text:\n{shown}\n\n"
        f"Write {n_new} more rules like these, each one sentence, one per line starting with \"- \". "
        f"No rules about {banned}."
    )}, {"role": "assistant", "content": "- "}]


VERIFIER_PREFILL = "```python\ndef evaluate(response):\n    "  # the indent: small models often forget it


def verifier(instruction: str, n_cases: int) -> Messages:
    """Ask for an ``evaluate(response)`` function, then labelled test cases as a JSON list.

    Function first in a code block, cases after as JSON: easier for small models than one JSON
    object holding escaped code, and the parser accepts both shapes (and the paper's JSON object).
    """
    return [{"role": "user", "content": (
        f"Rule for an answer: \"{instruction}\"\n\n"
        "Write a Python function `evaluate(response)` that returns True when the text `response` obeys "
        "the rule and False otherwise. Use only the standard library (re, string, math, collections).\n"
        f"Then give {n_cases} test cases as a JSON list, some obeying the rule and some breaking it: "
        "[{\"input\": \"an example answer\", \"output\": true}, {\"input\": \"another answer\", \"output\": false}]"
    )}, {"role": "assistant", "content": VERIFIER_PREFILL}]


def backtranslate(functions: Sequence[str]) -> Messages:
    """Ask what rule each verification function checks: one instruction per function."""
    blocks = "\n\n".join(f"Function {i + 1}:\n```python\n{src.strip()}\n```" for i, src in enumerate(functions))
    return [{"role": "user", "content": (
        "Each Python function below decides whether an answer text follows some rule about its form. "
        "Read the code carefully and state, as one plain English instruction to a writer, the rule it "
        "checks. Describe what the code actually tests, nothing more.\n\n"
        f"{blocks}\n\n"
        f"Reply with a JSON list of {len(functions)} strings, one instruction per function, in order."
    )}]


def nli(premise: str, hypothesis: str) -> Messages:
    """LLM-as-NLI: does the back-translated instruction agree with the original?"""
    return [{"role": "user", "content": (
        "Two instructions for writing an answer:\n"
        f"A: \"{premise}\"\n"
        f"B: \"{hypothesis}\"\n\n"
        "If an answer follows A, does it also follow B? Reply with exactly one line:\n"
        "Label: entailment   (following A means following B)\n"
        "Label: neutral      (it may or may not)\n"
        "Label: contradiction   (following A means breaking B)"
    )}, {"role": "assistant", "content": "Label: "}]  # primed: small models then answer with a label


def response(instruction: str, query: str, layout: str = "instruction_first") -> Messages:
    """A user turn that combines a query with an instruction (layout is a param, see combine_turn)."""
    return [{"role": "user", "content": combine_turn(instruction, query, layout)}]


def quality_judge(instruction: str, query: str, answer: str, lo: int = 1) -> Messages:
    """Score ``lo``-10 (paper: 1-10) how well an answer serves the query while obeying the instruction;
    last line 'Score: N'."""
    return [{"role": "user", "content": (
        "Rate an assistant's answer.\n\n"
        f"User request: {query.strip()}\n"
        f"Extra rule the answer had to obey: {instruction.strip()}\n\n"
        f"Answer:\n<<<\n{answer.strip()}\n>>>\n\n"
        "Think briefly about whether the answer obeys the rule and still addresses the request "
        f"(obeying the rule may make it less complete; that is acceptable). Then give a score from {lo} "
        "(unrelated or broken) to 10 (obeys the rule and is genuinely helpful). "
        "End with a last line of the form \"Score: N\"."
    )}]
