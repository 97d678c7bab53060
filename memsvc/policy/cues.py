"""What a message's words say, read cheaply with patterns: the text features and the rules of
the ``learned`` write policy (``memsvc.policy.learned``). No model calls, deterministic."""

from __future__ import annotations

import re

_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'\u2019-]*")
_NUMBER = re.compile(
    r"\d|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty"
    r"|forty|fifty|hundred|thousand|million|dozen|half|once|twice)\b",
    re.IGNORECASE,
)
_MONTHS = (
    "january|february|march|april|may|june|july|august|september|october|november|december"
    "|jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec"
)
_TIME = re.compile(
    rf"\b(?:{_MONTHS}|monday|tuesday|wednesday|thursday|friday|saturday|sunday|weekend"
    r"|yesterday|today|tonight|tomorrow|last|next|ago|recently|earlier|later|morning"
    r"|afternoon|evening|night|week|weeks|month|months|year|years|day|days|since|until"
    r"|(?:19|20)\d\d|\d{1,2}(?::\d\d)?\s?(?:am|pm)|\d{1,2}/\d{1,2}(?:/\d{2,4})?)\b",
    re.IGNORECASE,
)
_FIRST_PERSON = frozenset(
    "i i'm i've i'd i'll im ive my me mine myself we we're we've our ours us".split()
)
_WH = frozenset("what when where which who whom whose why how do does did is are can could".split())
# Words that carry nothing on their own: greetings, thanks, acknowledgements, laughter.
_FILLER = frozenset(
    """hi hey hello hiya yo bye goodbye goodnight night morning see you later soon cya thanks
    thank thx ty you so much a lot very really ok okay k kk sure yes yeah yep yup no nope nah
    cool great nice awesome wow amazing lovely good glad fine right alright haha hahaha lol
    lmao hehe oh ah hmm um uh np welcome too same totally absolutely definitely agreed true
    indeed :) :( care take bet sounds got it will do""".split()
)
# A first-person statement of a stable profile fact (name, work, home, family, diet, health).
_NAME = r"(?-i:[A-Z])"  # a capitalised word follows: a name
_PROFILE = re.compile(
    rf"\b(?:my name is|call me {_NAME}|i(?:'m| am) \d+ years old"
    r"|i(?:'m| am) (?:a )?(?:vegan|vegetarian|pescatarian|lactose intolerant|allergic to"
    r"|married|divorced|engaged)\b|i(?:'m| am) (?:from|based in|living in) "
    rf"{_NAME}|i live in {_NAME}|i was born in|i grew up in {_NAME}"
    r"|i work (?:as|at|for) |i(?:'m| am) an? \w+ by profession|my job is"
    r"|my (?:wife|husband|partner|son|daughter|mom|mother|dad|father|brother|sister"
    rf"|boyfriend|girlfriend|dog|cat)(?:'s name is| is called| is named) {_NAME}"
    r"|i have (?:a|an|one|two|three|four) (?:sons?|daughters?|kids|children|dogs?|cats?)\b"
    r"|i(?:'m| am) allergic|i have an? \w+ allergy|i don'?t eat|i can'?t eat"
    r"|my birthday is)",
    re.IGNORECASE,
)
# A preference, habit or general fact (semantic rather than an event).
_PREFERENCE = re.compile(
    r"\b(?:i (?:really )?(?:like|love|enjoy|prefer|hate|dislike|adore)|my fav(?:ou?rite)?"
    r"|i(?:'m| am) (?:a (?:big )?fan|into|interested in)|i usually|i always|i often|i tend to"
    r"|i never)\b",
    re.IGNORECASE,
)
# An explicit retraction of something stored earlier (at the start of a sentence, or a
# statement that something no longer holds).
_RETRACTION = re.compile(
    r"(?:^|[.!?]\s+)(?:please\s+)?(?:forget (?:that|about|what i (?:said|told you))"
    r"|scratch that|ignore what i said|disregard (?:that|what i said)"
    r"|(?:delete|remove) (?:that|the (?:memory|note))|(?:actually,?\s+)?i was wrong about)"
    r"|\b(?:(?:that|this|it)(?:'s| is) (?:no longer|not) true|no longer true"
    r"|not true any ?more|i no longer|i don'?t \w+ (?:\w+ )?any ?more|i(?:'m| am) not \w+ any ?more"
    r"|i(?:'ve| have) stopped|i quit)\b",
    re.IGNORECASE,
)
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def words(text: str) -> list[str]:
    """Lower-cased words (apostrophes kept, curly ones made straight)."""
    return [w.lower().replace("\u2019", "'") for w in _WORD.findall(text)]


def has_number(text: str) -> bool:
    return bool(_NUMBER.search(text))


def numbers(text: str) -> set[str]:
    """The digit groups of ``text`` (what an update of a fact changes)."""
    return set(re.findall(r"\d+(?:[.,:/]\d+)*", text))


def has_time(text: str) -> bool:
    return bool(_TIME.search(text))


def entities(text: str) -> int:
    """Capitalised words that do not start a sentence (names, places, titles)."""
    count = 0
    for m in re.finditer(r"(?<![.?!]\s)(?<!^)\b([A-Z][a-zA-Z'-]+)", text.strip()):
        if m.group(1) not in ("I", "I'm", "I've", "I'd", "I'll"):
            count += 1
    return count


def first_person(text: str) -> bool:
    return any(w in _FIRST_PERSON for w in words(text))


def question(text: str) -> float:
    """1 for a question, 0.7 for a message with a question in it, 0.5 for a wh-opening."""
    stripped = text.strip()
    if stripped.endswith("?"):
        return 1.0
    if "?" in stripped:
        return 0.7
    ws = words(stripped[:40])
    return 0.5 if ws and ws[0] in _WH else 0.0


def filler(text: str) -> float:
    """The share of filler words in a short message (0 for a question or a message of more
    than 12 words: a question opens the memory its answer joins)."""
    ws = words(text)
    if not ws:
        return 1.0
    if len(ws) > 12 or "?" in text:
        return 0.0
    return sum(1 for w in ws if w in _FILLER) / len(ws)


def profile(text: str) -> str | None:
    """The sentence of ``text`` that states a stable profile fact, as one short line, when
    that sentence is most of the message (otherwise the message says more than the line)."""
    if retraction(text):
        return None
    text = _straight(text).strip()
    size = len(text)
    for sentence in _SENTENCE.split(text):
        if _PROFILE.search(sentence) and "?" not in sentence:
            line = " ".join(sentence.split()).strip(" .!,;")
            if 0 < len(line) <= 200 and len(line) >= 0.6 * size:
                return line[0].upper() + line[1:] + "."
    return None


def preference(text: str) -> bool:
    return bool(_PREFERENCE.search(_straight(text)))


def retraction(text: str) -> bool:
    return bool(_RETRACTION.search(_straight(text)))


def _straight(text: str) -> str:
    """Curly apostrophes made straight: the patterns spell "I'm" one way."""
    return text.replace("\u2019", "'")


def content_terms(text: str) -> set[str]:
    """Words of four letters or more, numbers left out: what two statements share."""
    return {w for w in words(text) if len(w) >= 4 and not w[0].isdigit()}
