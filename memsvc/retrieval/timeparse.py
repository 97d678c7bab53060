"""Dates and periods named in a query ("in May 2023", "last week of June", "2022").

A small rule parser: no model, no network, predictable. Each match is a half-open
``Period`` [start, end) in UTC; a month named without a year matches that month of any
year. Relative phrases ("yesterday", "last week", "last Saturday", "two weeks ago") are read
against ``now``: the asker's current time when the request gives one.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

MONTHS = {
    name.lower(): i
    for i in range(1, 13)
    for name in (calendar.month_name[i], calendar.month_abbr[i])
}
MONTHS["sept"] = 9
_MON = r"(?P<mon>" + "|".join(sorted(MONTHS, key=len, reverse=True)) + r")\.?"
_FULL_MON = r"(?P<mon>" + "|".join(calendar.month_name[1:]) + r")"
_YEAR = r"(?P<year>(?:19|20)\d\d)"
_DAY = r"(?P<day>[0-3]?\d)(?:st|nd|rd|th)?"
_PART = r"(?P<part>first|1st|second|2nd|third|3rd|fourth|4th|last|final)\s+week\s+of"
_EDGE = r"(?P<edge>early|beginning\s+of|mid|middle\s+of|late|end\s+of)"

_PATTERNS: list[re.Pattern[str]] = [
    re.compile(r"\b(?P<iy>\d{4})-(?P<im>\d\d)-(?P<id>\d\d)\b"),
    re.compile(rf"\b{_DAY}\s+(?:of\s+)?{_MON}(?:,?\s+{_YEAR})?\b", re.I),
    re.compile(rf"\b{_MON}\s+{_DAY}(?:,?\s+{_YEAR})?\b(?!\d)", re.I),
    re.compile(rf"\b(?:{_PART}|{_EDGE})\s+(?:-\s*)?{_MON}(?:,?\s+(?:of\s+)?{_YEAR})?\b", re.I),
    re.compile(rf"\b{_MON},?\s+(?:of\s+)?{_YEAR}\b", re.I),
    # A month with no day or year only after a preposition: "may" is also a verb.
    re.compile(rf"\b(?:in|during|since|before|after|until|by|through)\s+{_FULL_MON}\b", re.I),
    re.compile(rf"\b(?:in|during|of|since|before|after|from)?\s*{_YEAR}\b", re.I),
]
_RELATIVE = re.compile(
    r"\b(?P<rel>yesterday|today|last\s+(?:week|month|year)|this\s+(?:week|month|year))\b", re.I
)
_WEEKDAYS = {name.lower(): i for i, name in enumerate(calendar.day_name)}
_WEEKDAY = re.compile(
    r"\b(?P<which>last|this\s+past|past|on)\s+(?P<wd>" + "|".join(calendar.day_name) + r")\b",
    re.I,
)
_COUNTS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6}
_COUNTS.update({"seven": 7, "eight": 8, "nine": 9, "ten": 10, "couple of": 2, "few": 3})
_AGO = re.compile(
    r"\b(?P<n>\d{1,3}|a|an|one|two|three|four|five|six|seven|eight|nine|ten|(?:a\s+)?couple\s+of"
    r"|(?:a\s+)?few)\s+(?P<unit>day|week|month|year)s?\s+ago\b",
    re.I,
)
_PART_WEEK = {"first": 0, "1st": 0, "second": 1, "2nd": 1, "third": 2, "3rd": 2}
_PART_WEEK.update({"fourth": 3, "4th": 3})


@dataclass(frozen=True)
class Period:
    """A time span named by a query; ``start``/``end`` are None for a month of any year."""

    start: datetime | None
    end: datetime | None
    month: int | None = None
    text: str = ""


def _dt(year: int, month: int, day: int = 1) -> datetime:
    return datetime(year, month, day, tzinfo=UTC)


def _month_span(year: int, month: int) -> tuple[datetime, datetime]:
    start = _dt(year, month)
    return start, start + timedelta(days=calendar.monthrange(year, month)[1])


def _period(m: re.Match[str], text: str) -> Period | None:
    g = m.groupdict()
    if g.get("iy"):
        try:
            day = _dt(int(g["iy"]), int(g["im"]), int(g["id"]))
        except ValueError:
            return None
        return Period(day, day + timedelta(days=1), text=text)
    year = int(g["year"]) if g.get("year") else None
    mon = MONTHS.get((g.get("mon") or "").lower())
    if mon is None:
        if year is None:
            return None
        return Period(_dt(year, 1), _dt(year + 1, 1), text=text)
    if g.get("day"):
        day_n = int(g["day"])
        if year is None or not 1 <= day_n <= calendar.monthrange(year, mon)[1]:
            return Period(None, None, month=mon, text=text) if 1 <= day_n <= 31 else None
        start = _dt(year, mon, day_n)
        return Period(start, start + timedelta(days=1), text=text)
    if year is None:
        return Period(None, None, month=mon, text=text)
    start, end = _month_span(year, mon)
    part = (g.get("part") or "").lower()
    edge = " ".join((g.get("edge") or "").lower().split())
    if part in ("last", "final"):
        return Period(end - timedelta(days=7), end, text=text)
    if part:
        s = start + timedelta(days=7 * _PART_WEEK[part])
        return Period(s, s + timedelta(days=7), text=text)
    if edge in ("early", "beginning of"):
        return Period(start, start + timedelta(days=10), text=text)
    if edge in ("mid", "middle of"):
        return Period(start + timedelta(days=10), start + timedelta(days=20), text=text)
    if edge in ("late", "end of"):
        return Period(end - timedelta(days=10), end, text=text)
    return Period(start, end, text=text)


def _relative(word: str, now: datetime) -> Period:
    day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    w = " ".join(word.lower().split())
    if w == "today":
        return Period(day, day + timedelta(days=1), text=word)
    if w == "yesterday":
        return Period(day - timedelta(days=1), day, text=word)
    if w.endswith("week"):
        monday = day - timedelta(days=day.weekday())
        start = monday - timedelta(days=7) if w.startswith("last") else monday
        return Period(start, start + timedelta(days=7), text=word)
    if w.endswith("month"):
        first = day.replace(day=1)
        if w.startswith("last"):
            first = (first - timedelta(days=1)).replace(day=1)
        return Period(*_month_span(first.year, first.month), text=word)
    year = day.year - 1 if w.startswith("last") else day.year
    return Period(_dt(year, 1), _dt(year + 1, 1), text=word)


def _weekday(m: re.Match[str], now: datetime) -> Period:
    """``last Saturday``: the latest such day before today (a week back if today is one)."""
    day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    back = (day.weekday() - _WEEKDAYS[m.group("wd").lower()]) % 7 or 7
    start = day - timedelta(days=back)
    return Period(start, start + timedelta(days=1), text=m.group(0))


def _ago(m: re.Match[str], now: datetime) -> Period:
    """``two weeks ago``: a span around that instant, as wide as the unit is vague."""
    raw = " ".join(m.group("n").lower().split()).removeprefix("a ")
    n = int(raw) if raw.isdigit() else _COUNTS.get(raw, 1)
    unit = m.group("unit").lower()
    day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if unit == "day":
        at = day - timedelta(days=n)
        return Period(at - timedelta(days=1), at + timedelta(days=2), text=m.group(0))
    if unit == "week":
        at = day - timedelta(weeks=n)
        return Period(at - timedelta(days=4), at + timedelta(days=4), text=m.group(0))
    if unit == "month":
        first = day.replace(day=1)
        for _ in range(n):
            first = (first - timedelta(days=1)).replace(day=1)
        start, end = _month_span(first.year, first.month)
        return Period(start - timedelta(days=7), end + timedelta(days=7), text=m.group(0))
    return Period(_dt(day.year - n, 1), _dt(day.year - n + 1, 1), text=m.group(0))


def parse_periods(query: str, *, now: datetime | None = None) -> list[Period]:
    """The periods ``query`` names, most specific first; [] when it names none."""
    found: list[Period] = []
    taken: list[tuple[int, int]] = []
    for pattern in _PATTERNS:
        for m in pattern.finditer(query):
            span = m.span()
            if any(span[0] < e and s < span[1] for s, e in taken):
                continue
            period = _period(m, m.group(0).strip())
            if period is not None:
                found.append(period)
                taken.append(span)
    at = now or datetime.now(UTC)
    for pattern, read in ((_WEEKDAY, _weekday), (_AGO, _ago)):
        for m in pattern.finditer(query):
            if any(m.start() < e and s < m.end() for s, e in taken):
                continue
            found.append(read(m, at))
            taken.append(m.span())
    for m in _RELATIVE.finditer(query):
        if any(m.start() < e and s < m.end() for s, e in taken):
            continue
        found.append(_relative(m.group("rel"), at))
    return found
