"""Side-by-side diff of two memory versions: a word diff per field that changed or not."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from difflib import SequenceMatcher

from memsvc.schemas import MemoryVersionRead

_TOKEN = re.compile(r"\s+|\w+|[^\w\s]")
# Fields shown in a diff, in order; the content comes first.
FIELDS = (
    "content",
    "kind",
    "layer",
    "status",
    "tags",
    "keywords",
    "context",
    "importance",
    "valid_from",
    "valid_to",
    "metadata",
)


@dataclass(frozen=True)
class Segment:
    """A run of text on one side: ``op`` is ``equal``, ``delete`` (left) or ``insert`` (right)."""

    text: str
    op: str


@dataclass(frozen=True)
class FieldDiff:
    name: str
    left: list[Segment]
    right: list[Segment]
    changed: bool


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)
    return str(value)


def word_diff(old: str, new: str) -> tuple[list[Segment], list[Segment]]:
    """Left and right segments of a word-level diff (whitespace kept, so layout survives)."""
    a, b = _TOKEN.findall(old), _TOKEN.findall(new)
    left: list[Segment] = []
    right: list[Segment] = []
    matcher = SequenceMatcher(a=a, b=b, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            left.append(Segment("".join(a[i1:i2]), "equal"))
            right.append(Segment("".join(b[j1:j2]), "equal"))
            continue
        if i2 > i1:
            left.append(Segment("".join(a[i1:i2]), "delete"))
        if j2 > j1:
            right.append(Segment("".join(b[j1:j2]), "insert"))
    return left, right


def compare(old: MemoryVersionRead, new: MemoryVersionRead) -> list[FieldDiff]:
    """Every shown field of two versions, with word-level changes marked."""
    out = []
    for name in FIELDS:
        a, b = _text(getattr(old, name)), _text(getattr(new, name))
        left, right = word_diff(a, b)
        out.append(FieldDiff(name=name, left=left, right=right, changed=a != b))
    return out
