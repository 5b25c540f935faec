"""Every prompt the SPaR stages send, written for this project.

Three builders, each returning a chat conversation (a list of ``{"role", "content"}``
messages):

* ``evolve``: turn a plain user request into an instruction-following prompt with
  one required ("main") constraint plus a few more from ``TAXONOMY``.
* ``judge``: a strict step-by-step check of a response against every constraint,
  ending with the line ``Final Judgement: Yes`` or ``Final Judgement: No`` (what the
  vote parser reads).
* ``refine``: the judge turn, the judge's critique as the assistant turn, then a
  request for a minimally edited response.

Reply markers (``[[start]]`` / ``[[end]]``, ``Constraints:``, ``Refined response:``)
are module constants so the parsers in ``evolve.py`` and the search code read
exactly what the prompts ask for.
"""

from __future__ import annotations

import re

Messages = list[dict]

START = "[[start]]"
END = "[[end]]"
CONSTRAINTS_MARKER = "Constraints:"
JUDGEMENT_MARKER = "Final Judgement"
REFINED_MARKER = "Refined response:"

# The paper's constraint taxonomy: category -> subcategory -> options (14 subcategories).
TAXONOMY: dict[str, dict[str, list[str]]] = {
    "Format": {
        "Length": ["characters", "words", "sentences", "paragraphs", "sections"],
        "Text format": ["JSON", "Markdown", "list", "table", "bullet points", "postscript"],
        "Character format": ["uppercase", "lowercase", "mixed case", "letter frequency"],
        "Template": ["follow an example", "multiple choice", "special template"],
        "Punctuation": ["without a mark", "frequency", "start with", "end with"],
        "Numeric format": ["integer", "decimal", "scientific notation", "ordinal"],
    },
    "Content": {
        "Keyword": ["include", "exclude", "frequency"],
        "Symbol": ["title marks", "emoji", "placeholders", "custom symbols"],
        "Sentence": ["start with", "end with", "include", "syntax"],
        "Genre": ["poetry", "novel", "script", "letter", "speech", "diary", "tweet"],
    },
    "General": {
        "Language": ["English", "Chinese", "Thai", "German", "Marathi", "Spanish"],
        "Situation": ["role-play", "reasoning", "topic"],
        "Language style": ["formality", "writing style", "literary", "humor", "era", "profession"],
        "Sentiment": ["positive", "negative", "hopeful", "fascinating"],
    },
}

SUBCATEGORIES: list[tuple[str, str]] = [(cat, sub) for cat, subs in TAXONOMY.items() for sub in subs]


def _taxonomy_text() -> str:
    lines = []
    for cat, subs in TAXONOMY.items():
        lines.append(f"{cat}:")
        for sub, options in subs.items():
            lines.append(f"  - {sub}: {', '.join(options)}")
    return "\n".join(lines)


def evolve(request: str, main_constraint: tuple[str, str]) -> Messages:
    """Ask for a harder version of ``request`` that carries ``main_constraint`` plus 1-3 others.

    The rewritten prompt goes between ``[[start]]`` and ``[[end]]``; after ``[[end]]`` a line
    ``Constraints: a; b; c`` names every constraint added, so the parser can count them.
    Math and coding requests get the bare reply ``None``.
    """
    category, subcategory = main_constraint
    options = ", ".join(TAXONOMY.get(category, {}).get(subcategory, []))
    main = f"{category} / {subcategory}" + (f" (for example: {options})" if options else "")
    content = (
        "Your job is to turn a simple request from a user into a demanding instruction-following task. "
        "You do not answer the request; you only rewrite it.\n\n"
        f"Original request:\n{request.strip()}\n\n"
        f"Main constraint type to add: {main}.\n\n"
        "Types of constraint you may draw on:\n"
        f"{_taxonomy_text()}\n\n"
        "How to rewrite:\n"
        "1. Build in one constraint of the main type, unless it would contradict what the user asks; "
        "in that case leave it out.\n"
        "2. Add between one and three further constraints. They may come from the list above or be a "
        "new kind you invent. Prefer constraints that are not about length.\n"
        "3. Every constraint must be sensible for this request, compatible with all the others, and "
        "different in kind from the rest.\n"
        "4. Write the result as ordinary flowing prose addressed to an assistant, with the constraints "
        "worked into the sentences rather than listed as bullets or numbered points.\n"
        "5. Nothing visual: do not ask for images, drawings, charts or diagrams.\n"
        "6. Keep the user's original goal; do not solve or answer it.\n"
        "7. If the original request is a mathematics problem or a programming task, write nothing but "
        "the single word None.\n\n"
        f"Reply format: the rewritten request between {START} and {END}, then on one final line after "
        f"{END}, the constraints you included, separated by semicolons, like this:\n"
        f"{START}\nthe rewritten request\n{END}\n"
        f"{CONSTRAINTS_MARKER} first constraint; second constraint; third constraint"
    )
    return [{"role": "user", "content": content}]


def judge(prompt: str, response: str) -> Messages:
    """One user turn: strict step-by-step check of ``response`` against every constraint of ``prompt``.

    The reply must end with ``Final Judgement: Yes`` (every constraint met) or ``Final Judgement: No``.
    """
    content = (
        "You are a strict examiner of instruction following. Below are an instruction and a response "
        "to it. Decide whether the response obeys every requirement the instruction sets.\n\n"
        f"Instruction:\n{prompt.strip()}\n\n"
        f"Response:\n{response.strip()}\n\n"
        "Work through it step by step:\n"
        "1. Pick out each separate requirement in the instruction (content, format, length, style, "
        "language and so on).\n"
        "2. For each requirement, look at the response and say whether it is satisfied, citing the "
        "evidence.\n"
        "3. List every requirement that is not satisfied (or write that there are none).\n"
        "Be exacting: if even one requirement is missed or only partly met, the answer is No.\n\n"
        f"Finish with exactly one last line, either \"{JUDGEMENT_MARKER}: Yes\" or "
        f"\"{JUDGEMENT_MARKER}: No\"."
    )
    return [{"role": "user", "content": content}]


_VERDICT_RE = re.compile(r"final\s+judge?ments?\s*[*_`]*\s*[:：]?\s*[*_`\"']*\s*(yes|no)\b", re.IGNORECASE)


def judgment(critique: str | None, label: bool) -> str:
    """A judge's reply as the refiner writes it and reads it back: the critique, then exactly one verdict line
    ``Final Judgement: Yes/No``. A verdict line already in the critique (and any chatter after it) is cut first,
    so the function is idempotent: search and training send the very same text."""
    body = (critique or "").rstrip()
    found = list(_VERDICT_RE.finditer(body))
    if found:  # cut from the start of the last verdict's line
        body = body[:body.rfind("\n", 0, found[-1].start()) + 1].rstrip()
    return (body + "\n\n" if body else "") + f"{JUDGEMENT_MARKER}: {'Yes' if label else 'No'}"


def refine_instruction() -> str:
    """The third turn of ``refine``: ask for a minimally changed response that meets every constraint."""
    return (
        "Now improve the response using your assessment. Fix every requirement it failed so that the "
        "new version satisfies all of the instruction's constraints, and keep everything else as close "
        "to the original response as you can.\n"
        f"First write a brief reflection on what has to change. Then write \"{REFINED_MARKER}\" and give "
        f"the full revised response between {START} and {END}."
    )


def refine(prompt: str, response: str, critique: str) -> Messages:
    """Three turns: judge(prompt, response), the critique as the judge's reply ending ``Final Judgement: No``
    (``judgment``: the same text in search, in the supervisor's data and in RFT), the refine request."""
    return [
        judge(prompt, response)[0],
        {"role": "assistant", "content": judgment(critique, False)},
        {"role": "user", "content": refine_instruction()},
    ]
