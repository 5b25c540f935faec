"""Parsers for LLM completions in autoif_lib.autoif.parsing.

Table-driven: each row is one input style, reject reason or coercion, written
the way a weak (135M) or a chatty model actually answers. Pure functions, no
model, no files.

    pytest -q tests/test_parsing.py
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter

import pytest

from autoif_lib.autoif.parsing import (
    REJECT_REASONS,
    ParsedSample,
    dedup,
    dedup_key,
    near_duplicate,
    normalize_instruction,
    parse_instruction_list,
    parse_nli_label,
    parse_score,
    parse_string_list,
    parse_verifier_sample,
)

LONG_61_WORDS = "- " + " ".join(["word"] * 61)
LONG_401_CHARS = "- Write " + " ".join(["supercalifragilistic"] * 20)  # 21 words, > 400 chars

# ====================================================================== parse_instruction_list

INSTRUCTION_LIST_CASES = [
    pytest.param(
        "Here are 10 instructions:\n- Write everything in lowercase letters\n- Use exactly three bullet points\n",
        ["Write everything in lowercase letters.", "Use exactly three bullet points."], {},
        id="dash-bullets-preamble-dropped",
    ),
    pytest.param(
        "* answer using only words of one syllable\n* end every sentence with an exclamation mark",
        ["Answer using only words of one syllable.", "End every sentence with an exclamation mark."], {},
        id="star-bullets-capitalized",
    ),
    pytest.param(
        "\u2022 Write the response as a numbered list\n\u2022 Do not use the letter e anywhere",
        ["Write the response as a numbered list.", "Do not use the letter e anywhere."], {},
        id="unicode-bullets",
    ),
    pytest.param(
        "1. Respond in exactly three sentences.\n2. Put the whole answer in capital letters.",
        ["Respond in exactly three sentences.", "Put the whole answer in capital letters."], {},
        id="numbered-dot",
    ),
    pytest.param(
        "1) Respond in exactly three sentences\n2) Put the whole answer in capital letters",
        ["Respond in exactly three sentences.", "Put the whole answer in capital letters."], {},
        id="numbered-paren",
    ),
    pytest.param(
        "(1) Respond in exactly three sentences\n(2) Put the whole answer in capital letters",
        ["Respond in exactly three sentences.", "Put the whole answer in capital letters."], {},
        id="numbered-parenthesized",
    ),
    pytest.param(
        "Instruction 1: Wrap every word in double quotes\nInstruction 2: Separate paragraphs with three asterisks",
        ["Wrap every word in double quotes.", "Separate paragraphs with three asterisks."], {},
        id="instruction-n-labels",
    ),
    pytest.param(
        '["Write the response in reverse order", "Use no more than fifty words"]',
        ["Write the response in reverse order.", "Use no more than fifty words."], {},
        id="json-list",
    ),
    pytest.param(
        "['Write the response in reverse order', 'Use no more than fifty words']",
        ["Write the response in reverse order.", "Use no more than fifty words."], {},
        id="python-list",
    ),
    pytest.param(
        'Sure! Here they are:\n```json\n[\n  "Write the response in reverse order",\n  "Use no more than fifty words"\n]\n```',
        ["Write the response in reverse order.", "Use no more than fifty words."], {},
        id="fenced-pretty-json-list",
    ),
    pytest.param(
        '- **Use exactly three bullet points.**\n- "Do not use any commas in the response"\n- \u201cEnd with the word STOP\u201d  ',
        ["Use exactly three bullet points.", "Do not use any commas in the response.", "End with the word STOP."], {},
        id="bold-and-quotes-stripped",
    ),
    pytest.param(
        "- \u00e9crivez chaque mot en lettres minuscules\n- \u00fcber every sentence put a title",
        ["\u00c9crivez chaque mot en lettres minuscules.", "\u00dcber every sentence put a title."], {},
        id="unicode-capitalized",
    ),
    pytest.param(
        '- Write the words ["a", "b"] at the end of the reply',
        ['Write the words ["a", "b"] at the end of the reply.'], {},
        id="inline-list-in-bullet-not-the-list",
    ),
    pytest.param("- Be brief\n- Use no commas anywhere at all", ["Use no commas anywhere at all."], {"too_short": 1}, id="too-short"),
    pytest.param(LONG_61_WORDS, [], {"too_long": 1}, id="too-long-words"),
    pytest.param(LONG_401_CHARS, [], {"too_long": 1}, id="too-long-chars"),
    pytest.param("- 12345 678 910 11\n- *** --- ###", [], {"no_letters": 2}, id="no-letters"),
    pytest.param("- What topic would you like me to write about?", [], {"not_an_instruction": 1}, id="question-to-user"),
    pytest.param(
        "- def evaluate(response): return response.islower()\n- import re\n- Check that len(response.split()) stays small\n- Output must satisfy x == 3 for all words",
        [], {"not_an_instruction": 4}, id="code-lines",
    ),
    pytest.param("- I'm sorry, but I cannot generate these instructions for you", [], {"not_an_instruction": 1}, id="refusal-bullet"),
    pytest.param("- Here are some format instructions for you:", [], {"not_an_instruction": 1}, id="bulleted-preamble"),
    pytest.param('["Use no commas in the whole answer", 5, null]', ["Use no commas in the whole answer."], {"not_an_instruction": 2}, id="non-string-list-items"),
    pytest.param(
        "- Write everything in lowercase letters\n- write EVERYTHING in lowercase letters!!\n- Write everything, in lowercase letters.",
        ["Write everything in lowercase letters."], {"duplicate_in_call": 2}, id="duplicate-in-call",
    ),
    pytest.param(
        "- Return the answer in capital letters only\n- For every sentence, start with the letter B",
        ["Return the answer in capital letters only.", "For every sentence, start with the letter B."], {},
        id="imperatives-not-mistaken-for-code",
    ),
    pytest.param("I cannot do that.", [], {"no_list": 1}, id="no-list-refusal"),
    pytest.param("", [], {"no_list": 1}, id="no-list-empty"),
    pytest.param("Write in lowercase. Use no commas. Answer in French.", [], {"no_list": 1}, id="no-list-prose"),
    pytest.param("[]", [], {"no_list": 1}, id="no-list-empty-json"),
    pytest.param("[1, 2, 3]", [], {"no_list": 1}, id="no-list-numbers-only"),
]


@pytest.mark.parametrize("text, expected, rejects", INSTRUCTION_LIST_CASES)
def test_parse_instruction_list(text, expected, rejects):
    items, counts = parse_instruction_list(text)
    assert items == expected
    assert counts == Counter(rejects)


# ====================================================================== normalize_instruction

NORMALIZE_CASES = [
    pytest.param("  - write   in\tlowercase  ", "Write in lowercase.", id="whitespace-bullet"),
    pytest.param("1. **Use no commas**", "Use no commas.", id="number-bold"),
    pytest.param("(3) respond in haiku", "Respond in haiku.", id="paren-number"),
    pytest.param('"Answer in French"', "Answer in French.", id="double-quotes"),
    pytest.param('"Answer in French".', "Answer in French.", id="quotes-then-period"),
    pytest.param("\u201cCurly quoted instruction\u201d", "Curly quoted instruction.", id="curly-quotes"),
    pytest.param("'Hello' must be the first word", "'Hello' must be the first word.", id="inner-quotes-kept"),
    pytest.param("Is every word capitalized?", "Is every word capitalized?", id="question-kept"),
    pytest.param("Is every word capitalized?.", "Is every word capitalized?", id="question-period"),
    pytest.param("Shout it!", "Shout it!", id="exclamation-kept"),
    pytest.param("End with two dots..", "End with two dots.", id="double-period"),
    pytest.param("Trail off...", "Trail off.", id="ellipsis"),
    pytest.param("Ends with a colon:", "Ends with a colon.", id="colon"),
    pytest.param("Ends with a comma,", "Ends with a comma.", id="comma"),
    pytest.param('Finish with the word "STOP."', 'Finish with the word "STOP."', id="period-inside-quote"),
    pytest.param('Finish with the word "STOP"', 'Finish with the word "STOP".', id="period-after-quote"),
    pytest.param("Instruction: write backwards", "Write backwards.", id="instruction-label"),
    pytest.param("*use italics nowhere*", "Use italics nowhere.", id="italic-wrapper"),
    pytest.param("3 sentences, each under ten words", "3 sentences, each under ten words.", id="leading-number-not-numbering"),
    pytest.param("\u00e9crire en minuscules", "\u00c9crire en minuscules.", id="unicode-capital"),
    pytest.param("", "", id="empty"),
    pytest.param("...", "", id="only-punctuation"),
]


@pytest.mark.parametrize("raw, expected", NORMALIZE_CASES)
def test_normalize_instruction(raw, expected):
    assert normalize_instruction(raw) == expected


@pytest.mark.parametrize("raw, expected", NORMALIZE_CASES)
def test_normalize_instruction_is_idempotent(raw, expected):
    assert normalize_instruction(normalize_instruction(raw)) == normalize_instruction(raw)


# ====================================================================== dedup_key / near_duplicate / dedup


@pytest.mark.parametrize("raw, key", [
    pytest.param("Write, in LOWERCASE!!", "write in lowercase", id="case-punct"),
    pytest.param("  Use   'single'   quotes. ", "use single quotes", id="quotes-whitespace"),
    pytest.param("\u00c9crire \u2014 \u00c9T\u00c9", "\u00e9crire \u00e9t\u00e9", id="unicode-dash"),
    pytest.param("\uff21\uff22\uff23 letters", "abc letters", id="fullwidth-nfkc"),
    pytest.param("Use 3 words.", "use 3 words", id="digits-kept"),
    pytest.param("", "", id="empty"),
])
def test_dedup_key(raw, key):
    assert dedup_key(raw) == key


@pytest.mark.parametrize("a, b, threshold, expected", [
    pytest.param("Write in lowercase.", "write in LOWERCASE", 0.85, True, id="same-key"),
    pytest.param("Use lowercase letters only in the reply.", "In the reply use only lowercase letters.", 0.85, True, id="reordered"),
    pytest.param(
        "Write every sentence of the response using only lowercase letters and no digits",
        "Write every sentence of the response using only lowercase letters and no digits at",
        0.85, True, id="one-extra-word-long",
    ),
    pytest.param("Use exactly 3 bullet points in the answer.", "Use exactly 5 bullet points in the answer.", 0.5, False, id="numbers-differ"),
    pytest.param("Do not use the letter e in your response.", "Do not use the letter a in your response.", 0.85, False, id="letter-differs"),
    pytest.param("Write in lowercase.", "Answer in French with three paragraphs.", 0.85, False, id="unrelated"),
    pytest.param("Write in all lowercase letters.", "Write in lowercase letters.", 0.85, False, id="short-one-word-diff"),
    pytest.param("Write in all lowercase letters.", "Write in lowercase letters.", 0.7, True, id="lower-threshold"),
    pytest.param("", "", 0.85, True, id="both-empty"),
])
def test_near_duplicate(a, b, threshold, expected):
    assert near_duplicate(a, b, threshold) is expected
    assert near_duplicate(b, a, threshold) is expected


@pytest.mark.parametrize("items, existing, kept, rejects", [
    pytest.param(["Write in lowercase.", "Use no commas."], ["write in LOWERCASE"], ["Use no commas."], {"exact_duplicate": 1}, id="exact-vs-existing"),
    pytest.param(["In the reply use only lowercase letters."], ["Use lowercase letters only in the reply."], [], {"near_duplicate": 1}, id="near-vs-existing"),
    pytest.param(["Use no commas.", "Answer in French.", "use no commas!"], [], ["Use no commas.", "Answer in French."], {"exact_duplicate": 1}, id="exact-within-keeps-first"),
    pytest.param(
        ["Use lowercase letters only in the reply.", "In the reply use only lowercase letters.", "Answer in French."], [],
        ["Use lowercase letters only in the reply.", "Answer in French."], {"near_duplicate": 1}, id="near-within-keeps-first",
    ),
    pytest.param(["Use exactly 3 bullets.", "Use exactly 4 bullets."], [], ["Use exactly 3 bullets.", "Use exactly 4 bullets."], {}, id="numbers-keep-both"),
    pytest.param([], ["Anything."], [], {}, id="empty-input"),
])
def test_dedup(items, existing, kept, rejects):
    out, counts = dedup(items, existing)
    assert out == kept
    assert counts == Counter(rejects)


def test_dedup_default_existing_and_threshold():
    out, counts = dedup(["Write in all lowercase letters.", "Write in lowercase letters."], threshold=0.7)
    assert out == ["Write in all lowercase letters."] and counts == Counter(near_duplicate=1)


def test_dedup_scales_to_a_few_thousand():
    items = [f"Use exactly {i} words and no letter {chr(97 + i % 26)} in the reply." for i in range(1500)]
    t0 = time.perf_counter()
    out, counts = dedup(items + items[:10])
    assert len(out) == 1500 and counts == Counter(exact_duplicate=10)
    assert time.perf_counter() - t0 < 1.5


# ====================================================================== parse_verifier_sample

F_LOWER = "def evaluate(response):\n    return response.islower()"
F_LOWER_JSON = json.dumps(F_LOWER)
CASES3 = '[{"input": "abc", "output": true}, {"input": "ABC", "output": false}, {"input": "a b", "output": true}]'
CASES3_PARSED = [{"input": "abc", "output": True}, {"input": "ABC", "output": False}, {"input": "a b", "output": True}]
SLM_REPLY = "```python\ndef evaluate(response: str) -> bool:\n    return response.islower()\n```\nThis function uses the islower method to check the response."

# (text, func, cases, reject, case_rejects, notes that must be present)
VERIFIER_CASES = [
    pytest.param(f'```json\n{{"func": {F_LOWER_JSON}, "cases": {CASES3}}}\n```', F_LOWER, CASES3_PARSED, None, {}, [], id="json-fence"),
    pytest.param(
        f'Sure, here is the JSON you asked for:\n{{"func": {F_LOWER_JSON}, "cases": {CASES3}}}\nI hope this helps {{you}}!',
        F_LOWER, CASES3_PARSED, None, {}, [], id="bare-json-with-prose",
    ),
    pytest.param(
        "{'func': 'def evaluate(response):\\n    return response.islower()', 'cases': [{'input': 'abc', 'output': True}, {'input': 'ABC', 'output': False}]}",
        F_LOWER, CASES3_PARSED[:2], None, {}, ["python literal"], id="python-dict-single-quotes",
    ),
    pytest.param(
        "{'func': 'def evaluate(response):\\n    return response.islower()', 'cases': [{'input': 'abc', 'output': true}]}",
        F_LOWER, CASES3_PARSED[:1], None, {}, ["python literal", "repaired python strings"], id="python-dict-with-json-true",
    ),
    pytest.param(
        '{"func": "def evaluate(response):\n    return response.islower()", "cases": [{"input": "abc", "output": true}]}',
        F_LOWER, CASES3_PARSED[:1], None, {}, ["repaired json strings"], id="raw-newlines-in-func",
    ),
    pytest.param(
        '{"func": "import re\\ndef evaluate(response):\\n    return bool(re.search(r\'\\d+\', response))", "cases": [{"input": "a1", "output": true}]}',
        "import re\ndef evaluate(response):\n    return bool(re.search(r'\\d+', response))", [{"input": "a1", "output": True}], None, {},
        ["repaired json strings"], id="invalid-json-escape-backslash-d",
    ),
    pytest.param(
        '{"func": "def evaluate(response):\\n    return response != \\"don\\\'t\\"", "cases": []}',
        "def evaluate(response):\n    return response != \"don't\"", [], None, {}, ["no_cases"], id="escaped-apostrophe-in-json",
    ),
    pytest.param(
        '{"func": ' + F_LOWER_JSON + ', "cases": [{"input": "a", "output": "True"}, {"input": "B", "output": "false"}, '
        '{"input": "c", "output": "yes"}, {"input": "D", "output": "No"}, {"input": "e", "output": "1"}, {"input": "F", "output": " 0 "}]}',
        F_LOWER,
        [{"input": "a", "output": True}, {"input": "B", "output": False}, {"input": "c", "output": True},
         {"input": "D", "output": False}, {"input": "e", "output": True}, {"input": "F", "output": False}],
        None, {}, ["coerced string booleans"], id="string-booleans",
    ),
    pytest.param(
        '{"func": ' + F_LOWER_JSON + ', "cases": [{"input": "a", "output": 1}, {"input": "B", "output": 0}]}',
        F_LOWER, [{"input": "a", "output": True}, {"input": "B", "output": False}], None, {}, ["coerced int booleans"], id="int-booleans",
    ),
    pytest.param(
        '{"function": ' + F_LOWER_JSON + ', "test_cases": [{"response": "abc", "expected": true}]}',
        F_LOWER, CASES3_PARSED[:1], None, {}, [], id="synonyms-function-test_cases-response-expected",
    ),
    pytest.param(
        '{"code": ' + F_LOWER_JSON + ', "tests": [{"text": "abc", "label": true}]}',
        F_LOWER, CASES3_PARSED[:1], None, {}, [], id="synonyms-code-tests-text-label",
    ),
    pytest.param(
        '{"evaluate": ' + F_LOWER_JSON + ', "examples": [{"input": "abc", "result": true}]}',
        F_LOWER, CASES3_PARSED[:1], None, {}, [], id="synonyms-evaluate-examples-result",
    ),
    pytest.param(
        '{"Func": ' + F_LOWER_JSON + ', "CASES": [{"Input": "abc", "Output": true}]}',
        F_LOWER, CASES3_PARSED[:1], None, {}, [], id="keys-case-insensitive",
    ),
    pytest.param(
        "Here is the function:\n```python\n" + F_LOWER + "\n```\nAnd the cases:\n```json\n{\"cases\": " + CASES3 + "}\n```",
        F_LOWER, CASES3_PARSED, None, {}, ["func from python fence"], id="func-in-python-fence-outside-json",
    ),
    pytest.param(
        F_LOWER + "\n\nTest cases:\n{\"cases\": " + CASES3 + "}",
        F_LOWER, CASES3_PARSED, None, {}, ["func from bare def"], id="func-as-bare-def-outside-json",
    ),
    pytest.param(
        '{"func": "```python\\n' + F_LOWER.replace("\n", "\\n") + '\\n```", "cases": [{"input": "abc", "output": true}]}',
        F_LOWER, CASES3_PARSED[:1], None, {}, ["func fence stripped"], id="fence-inside-json-string",
    ),
    pytest.param(
        '```json\n{"func": "```python\\n' + F_LOWER.replace("\n", "\\n") + '\\n```", "cases": [{"input": "abc", "output": true}]}\n```',
        F_LOWER, CASES3_PARSED[:1], None, {}, ["func fence stripped"], id="fence-inside-json-string-inside-json-fence",
    ),
    pytest.param(
        '{"func": "def evaluate(response):\\n    d = {\\"a\\": \\"}\\"}\\n    return \'{\' not in response", '
        '"cases": [{"input": "}{ x", "output": false}, {"input": "ok", "output": true}]}',
        "def evaluate(response):\n    d = {\"a\": \"}\"}\n    return '{' not in response",
        [{"input": "}{ x", "output": False}, {"input": "ok", "output": True}], None, {}, [], id="nested-braces-inside-strings",
    ),
    pytest.param(
        '{"func": ' + F_LOWER_JSON + ', "cases": [{"input": "abc", "output": true}]}\n'
        '{"func": "def evaluate(response):\\n    return False", "cases": [{"input": "zzz", "output": false}]}',
        F_LOWER, CASES3_PARSED[:1], None, {}, [], id="multiple-objects-first-wins",
    ),
    pytest.param(
        '```json\n{"func": "def check(r):\\n    return 1", "cases": [{"input": "zzz", "output": false}]}\n```\n'
        '```json\n{"func": ' + F_LOWER_JSON + ', "cases": [{"input": "abc", "output": true}]}\n```',
        F_LOWER, CASES3_PARSED[:1], None, {}, [], id="first-object-with-evaluate-wins",
    ),
    pytest.param(
        'Format: {"note": "fill me"}\n{"func": ' + F_LOWER_JSON + ', "cases": [{"input": "abc", "output": true}]}',
        F_LOWER, CASES3_PARSED[:1], None, {}, [], id="first-object-without-keys-skipped",
    ),
    pytest.param(
        '{"func": "def evaluate(response):\\n    return \'\u00e9t\u00e9\' in response", '
        '"cases": [{"input": "\u00c7a va? \u041f\u0420\u0418\u0412\u0415\u0422 \U0001f600 \u00e9t\u00e9", "output": true}]}',
        "def evaluate(response):\n    return '\u00e9t\u00e9' in response",
        [{"input": "\u00c7a va? \u041f\u0420\u0418\u0412\u0415\u0422 \U0001f600 \u00e9t\u00e9", "output": True}], None, {}, [], id="unicode",
    ),
    pytest.param(
        '{"func": ["def evaluate(response):", "    return response.islower()"], "cases": []}',
        F_LOWER, [], None, {}, ["no_cases"], id="func-as-list-of-lines",
    ),
    pytest.param(
        '{"solution": ' + F_LOWER_JSON + ', "cases": [{"input": "abc", "output": true}]}',
        F_LOWER, CASES3_PARSED[:1], None, {}, ["func from key 'solution'"], id="func-under-unknown-key",
    ),
    pytest.param(
        '{"func": ' + F_LOWER_JSON + ', "cases": [["abc", true], ["ABC", false]]}',
        F_LOWER, CASES3_PARSED[:2], None, {}, ["cases given as pairs"], id="cases-as-pairs",
    ),
    pytest.param(
        '{"func": ' + F_LOWER_JSON + ', "cases": {"input": "abc", "output": true}}',
        F_LOWER, CASES3_PARSED[:1], None, {}, [], id="single-case-not-in-list",
    ),
    pytest.param(
        '{"func": ' + F_LOWER_JSON + ', "cases": {"abc": true, "ABC": "false"}}',
        F_LOWER, CASES3_PARSED[:2], None, {}, ["cases given as mapping", "coerced string booleans"], id="cases-as-mapping",
    ),
    pytest.param(
        '{"func": ' + F_LOWER_JSON + ', "cases": "see above"}',
        F_LOWER, [], None, {}, ["cases not a list", "no_cases"], id="cases-not-a-list",
    ),
    pytest.param(
        '{"func": ' + F_LOWER_JSON + ', "cases": [{"input": "abc", "output": true},]}',
        F_LOWER, CASES3_PARSED[:1], None, {}, ["python literal"], id="trailing-comma",
    ),
    pytest.param(
        '{"func": "def evaluate(response):\\n    return response.islower()\\n", "cases": [{"input": "abc", "output": true}, {"input": "AB',
        F_LOWER, CASES3_PARSED[:1], None, {}, ["func salvaged from broken json", "cases salvaged from fragments"], id="truncated-json-salvaged",
    ),
    pytest.param(
        '{"func": "def check(response):\\n    return True"}\n```python\n' + F_LOWER + "\n```",
        F_LOWER, [], None, {}, ["func from python fence", "no_cases"], id="json-func-without-evaluate-fence-wins",
    ),
    pytest.param(SLM_REPLY, "def evaluate(response: str) -> bool:\n    return response.islower()", [], None, {},
                 ["func from python fence", "no_cases"], id="slm-python-fence-then-prose"),
    pytest.param("```python\nimport re\n\n" + F_LOWER + "\n", "import re\n\n" + F_LOWER, [], None, {},
                 ["func from python fence", "no_cases"], id="unterminated-python-fence"),
    pytest.param(
        "Here is my answer:\nimport string\n\ndef _helper(s):\n    return s.strip()\n\n" + F_LOWER + "\n\nThis checks lowercase.",
        "import string\n\ndef _helper(s):\n    return s.strip()\n\n" + F_LOWER, [], None, {}, ["func from bare def"], id="bare-def-with-helpers",
    ),
    pytest.param(
        "Sure: def evaluate(response): return len(response) < 10\nIt counts characters.",
        "def evaluate(response): return len(response) < 10", [], None, {}, ["func from bare def"], id="bare-def-mid-line",
    ),
    pytest.param(
        '{"func": ' + F_LOWER_JSON + ', "cases": []}', F_LOWER, [], None, {}, ["no_cases"], id="func-only-no-cases",
    ),
    pytest.param(
        '{"func": "def check(response):\\n    return True", "cases": [{"input": "abc", "output": true}]}',
        None, CASES3_PARSED[:1], None, {}, ["no_evaluate_def", "no_func"], id="cases-only-func-without-evaluate",
    ),
    pytest.param(
        '{"cases": [{"input": "abc", "output": true}]}', None, CASES3_PARSED[:1], None, {}, ["no_func"], id="cases-only-no-func",
    ),
    pytest.param(
        '{"func": 42, "cases": [{"input": "abc", "output": true}]}', None, CASES3_PARSED[:1], None, {},
        ["func not a string", "no_func"], id="func-not-a-string",
    ),
    pytest.param(
        '{"func": ' + F_LOWER_JSON + ', "cases": ["abc", 5, {"output": true}, {"input": 3, "output": true}, {"input": null, "output": true}, '
        '{"input": "x"}, {"input": "y", "output": "maybe"}, {"input": "z", "output": 2}, {"input": "w", "output": null}, '
        '{"input": "ok", "output": false}]}',
        F_LOWER, [{"input": "ok", "output": False}], None,
        {"case_not_dict": 2, "case_missing_input": 1, "case_input_not_str": 2, "case_bad_label": 4}, [], id="case-rejects",
    ),
    pytest.param(
        '{"func": "def check(r):\\n    return 1", "cases": []}', None, [], "no_evaluate_def", {},
        ["no_evaluate_def", "no_func", "no_cases"], id="reject-no-evaluate-def",
    ),
    pytest.param(
        '{"cases": [{"input": 1, "output": true}, "junk"]}', None, [], "no_json_no_func", {"case_input_not_str": 1, "case_not_dict": 1},
        ["no_func", "no_cases"], id="reject-all-cases-invalid-no-func",
    ),
    pytest.param("I cannot do that.", None, [], "no_json_no_func", {}, ["no_func", "no_cases"], id="garbage-refusal"),
    pytest.param('{"answer": "yes"} and {broken', None, [], "no_json_no_func", {}, ["no_func", "no_cases"], id="json-without-keys"),
    pytest.param("```python\nprint('hello')\n```", None, [], "no_evaluate_def", {}, ["no_evaluate_def"], id="python-fence-without-evaluate"),
    pytest.param("", None, [], "empty", {}, ["no_func", "no_cases"], id="empty-string"),
    pytest.param("  \n\t ", None, [], "empty", {}, [], id="whitespace-only"),
]


@pytest.mark.parametrize("text, func, cases, reject, case_rejects, notes", VERIFIER_CASES)
def test_parse_verifier_sample(text, func, cases, reject, case_rejects, notes):
    ps = parse_verifier_sample(text)
    assert isinstance(ps, ParsedSample)
    assert ps.func == func
    assert ps.cases == cases
    assert ps.reject == reject
    assert ps.case_rejects == Counter(case_rejects)
    assert set(notes) <= set(ps.notes), ps.notes
    # Invariants every caller relies on.
    assert all(set(c) == {"input", "output"} and isinstance(c["input"], str) and isinstance(c["output"], bool) for c in ps.cases)
    assert ps.reject is None or ps.reject in REJECT_REASONS
    assert set(ps.case_rejects) <= set(REJECT_REASONS)
    assert ("no_func" in ps.notes) == (ps.func is None)
    assert ("no_cases" in ps.notes) == (not ps.cases)
    assert (ps.reject is None) == (ps.func is not None or bool(ps.cases))
    if ps.func is not None:
        assert re.search(r"def\s+evaluate\s*\(", ps.func) and not ps.func.startswith("```")
    assert len(ps.notes) == len(set(ps.notes))


def test_parsed_sample_is_frozen():
    ps = parse_verifier_sample(SLM_REPLY)
    with pytest.raises(Exception):
        ps.func = "x"  # type: ignore[misc]


def test_many_braces_stay_fast():
    # ~10k chars of unbalanced braces: larger than any completion the pipeline asks for.
    text = "{ " * 5000 + '{"func": "def evaluate(r): return 1"'
    t0 = time.perf_counter()
    ps = parse_verifier_sample(text)
    assert time.perf_counter() - t0 < 0.5
    assert ps.func == "def evaluate(r): return 1"  # salvaged from the unclosed object


# ====================================================================== parse_string_list

STRING_LIST_CASES = [
    pytest.param('["Write in lowercase.", "Use no commas."]', ["Write in lowercase.", "Use no commas."], id="json-list"),
    pytest.param("['Write in lowercase.', 'Use no commas.']", ["Write in lowercase.", "Use no commas."], id="python-list"),
    pytest.param('Here you go:\n```json\n[\n "Write in lowercase.",\n "Use no commas."\n]\n```\nDone.', ["Write in lowercase.", "Use no commas."], id="fenced-list"),
    pytest.param('["Write in\nlowercase.", "Use no\tcommas."]', ["Write in lowercase.", "Use no commas."], id="raw-newline-in-list-string"),
    pytest.param('[{"instruction": "Write in lowercase."}, "Use no commas."]', ["Write in lowercase.", "Use no commas."], id="list-of-dicts"),
    pytest.param("Instructions:\n- Write in lowercase.\n- **Use no commas.**", ["Write in lowercase.", "Use no commas."], id="bullets"),
    pytest.param("1. Write in lowercase\n2) Use no commas", ["Write in lowercase", "Use no commas"], id="numbered"),
    pytest.param('"Write in lowercase.",\n"Use no commas."', ["Write in lowercase.", "Use no commas."], id="quoted-lines"),
    pytest.param("  Respond only in lowercase letters.  ", ["Respond only in lowercase letters."], id="single-sentence"),
    pytest.param("Here is the instruction:\nRespond only in lowercase letters.", ["Respond only in lowercase letters."], id="preamble-then-sentence"),
    pytest.param("I cannot do that.", ["I cannot do that."], id="garbage-single-line-kept"),
    pytest.param("The function checks case.\nIt returns True for lowercase.\nOtherwise False.", [], id="multi-line-prose"),
    pytest.param("- Use the list [1, 2] in order\n- Answer in French", ["Use the list [1, 2] in order", "Answer in French"], id="bullets-beat-inline-list"),
    pytest.param("[]", [], id="empty-list-literal"),
    pytest.param("[1, 2]", [], id="list-without-strings"),
    pytest.param("", [], id="empty"),
    pytest.param("   \n ", [], id="whitespace"),
]


@pytest.mark.parametrize("text, expected", STRING_LIST_CASES)
def test_parse_string_list(text, expected):
    assert parse_string_list(text) == expected


# ====================================================================== parse_score


@pytest.mark.parametrize("text, kwargs, expected", [
    pytest.param("Analysis...\nScore: 8", {}, 8.0, id="plain"),
    pytest.param("**Score:** 8", {}, 8.0, id="bold-label"),
    pytest.param("**Score**: 9", {}, 9.0, id="bold-word"),
    pytest.param("Score: **7**", {}, 7.0, id="bold-number"),
    pytest.param("Score: 8/10", {}, 8.0, id="over-ten"),
    pytest.param("Score: 4/5", {}, 8.0, id="over-five-rescaled"),
    pytest.param("score = 7.5", {}, 7.5, id="equals-float"),
    pytest.param("Score: [9]", {}, 9.0, id="brackets"),
    pytest.param("Final Score (0-10): 6", {}, 6.0, id="parenthetical-range"),
    pytest.param("The score is 5.", {}, 5.0, id="score-is"),
    pytest.param("SCORE:10", {}, 10.0, id="upper-no-space"),
    pytest.param("Score: 0", {}, 0.0, id="zero"),
    pytest.param("A 10 would be perfect (Score: 10) but... Score: 3\nScore: 9", {}, 9.0, id="last-wins"),
    pytest.param("Score: 9\nOn reflection, Score: 11", {}, None, id="last-out-of-range"),
    pytest.param("Score: 11", {}, None, id="above-range"),
    pytest.param("Score: -1", {}, None, id="negative"),
    pytest.param("Score: 3", {"lo": 1, "hi": 5}, 3.0, id="custom-range"),
    pytest.param("Score: 0/0", {}, None, id="zero-denominator"),
    pytest.param("The response is great, 9 out of 10.", {}, None, id="absent"),
    pytest.param("Scores: 8", {}, None, id="plural-not-score"),
    pytest.param("", {}, None, id="empty"),
])
def test_parse_score(text, kwargs, expected):
    assert parse_score(text, **kwargs) == expected


# ====================================================================== parse_nli_label


@pytest.mark.parametrize("text, expected", [
    pytest.param("Label: Entailment", "entailment", id="label-entailment"),
    pytest.param("Label: neutral", "neutral", id="label-neutral"),
    pytest.param("**Label:** Contradiction.", "contradiction", id="label-bold"),
    pytest.param("They look consistent at first.\nLabel: contradiction", "contradiction", id="label-line-beats-prose"),
    pytest.param("Label: entailment\nOn second thought...\nFinal answer: neutral", "neutral", id="last-label-line"),
    pytest.param("Label: ???\nThe two are inconsistent.", "contradiction", id="unmappable-label-falls-back"),
    pytest.param("Answer: yes", "entailment", id="answer-yes"),
    pytest.param("Yes, the back-translation entails the original.", "entailment", id="yes"),
    pytest.param("No. The second asks for uppercase.", "contradiction", id="no"),
    pytest.param("The instructions are consistent.", "entailment", id="consistent"),
    pytest.param("Both instructions mean the same thing.", "entailment", id="same"),
    pytest.param("Instruction B entails instruction A.", "entailment", id="entails"),
    pytest.param("They contradict each other.", "contradiction", id="contradict"),
    pytest.param("These are inconsistent.", "contradiction", id="inconsistent"),
    pytest.param("The constraints conflict.", "contradiction", id="conflict"),
    pytest.param("They are not consistent.", "contradiction", id="not-consistent"),
    pytest.param("They don\u2019t match.", "contradiction", id="dont-match-curly-apostrophe"),
    pytest.param("There is no contradiction between them.", "neutral", id="no-contradiction"),
    pytest.param("It does not entail the original.", "neutral", id="does-not-entail"),
    pytest.param("It is unclear.", "neutral", id="unclear"),
    pytest.param("Partially overlapping.", "neutral", id="partially"),
    pytest.param("NEUTRAL", "neutral", id="neutral-upper"),
    pytest.param("The response uses no commas and I am confused", None, id="mid-sentence-no-ignored"),
    pytest.param("I cannot do that.", None, id="garbage"),
    pytest.param("", None, id="empty"),
])
def test_parse_nli_label(text, expected):
    assert parse_nli_label(text) == expected


# ====================================================================== REJECT_REASONS


def test_reject_reasons_documented_and_snake_case():
    assert all(re.fullmatch(r"[a-z]+(?:_[a-z]+)*", k) and v.strip() for k, v in REJECT_REASONS.items())


def test_every_emitted_reason_is_documented():
    emitted: set[str] = set()
    for p in INSTRUCTION_LIST_CASES:
        emitted |= set(parse_instruction_list(p.values[0])[1])
    for p in VERIFIER_CASES:
        ps = parse_verifier_sample(p.values[0])
        emitted |= set(ps.case_rejects) | ({ps.reject} - {None})
        emitted |= {n for n in ps.notes if n in {"no_func", "no_cases", "no_evaluate_def"}}
    emitted |= set(dedup(["Use no commas.", "use no commas", "No commas use."], ["Answer in French."])[1])
    emitted |= set(dedup(["Write in all lowercase letters.", "Write in lowercase letters."], threshold=0.7)[1])
    assert emitted == set(REJECT_REASONS)
