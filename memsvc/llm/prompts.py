"""Prompts are files: ``prompts/<task>.v<N>.md.j2``, each with a typed context and response.

Templates render with ``StrictUndefined`` (a missing variable is an error, never blank
text) and without autoescaping (the output is a prompt, not HTML).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Generic, TypeVar

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from pydantic import BaseModel

from memsvc.config import PACKAGE_DIR

PROMPTS_DIR = PACKAGE_DIR / "_prompts"

C = TypeVar("C", bound=BaseModel)
R = TypeVar("R", bound=BaseModel)

_FENCE = re.compile(r"^```[a-zA-Z]*\s*|\s*```$")

# Every prompt defined anywhere, by id (``enrich_note.v1``): the render test walks it.
REGISTRY: dict[str, Prompt[BaseModel, BaseModel]] = {}


@dataclass(frozen=True)
class Prompt(Generic[C, R]):
    """One versioned LLM task: its template file, context type, response type and a sample."""

    name: str
    version: int
    context: type[C]
    response: type[R]
    example: C

    def __post_init__(self) -> None:
        REGISTRY[self.id] = self  # type: ignore[assignment]

    @property
    def id(self) -> str:
        """``<name>.v<version>``: recorded as the prompt version in provenance."""
        return f"{self.name}.v{self.version}"

    @property
    def filename(self) -> str:
        return f"{self.id}.md.j2"

    def parse(self, raw: str) -> R:
        """The response model from the model's text (code fences and chatter around it cut)."""
        body = _FENCE.sub("", raw.strip())
        start, end = body.find("{"), body.rfind("}")
        if start < 0 or end < start:
            raise ValueError("the reply contains no JSON object")
        json.loads(body[start : end + 1])  # a clear JSON error before the schema's
        return self.response.model_validate_json(body[start : end + 1])


@lru_cache(maxsize=4)
def _env(directory: Path) -> Environment:
    return Environment(
        loader=FileSystemLoader(str(directory)),
        undefined=StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(prompt: Prompt[C, R], context: C, *, directory: Path = PROMPTS_DIR) -> str:
    """The prompt text for ``context`` (raises on any undefined variable)."""
    if not isinstance(context, prompt.context):
        raise TypeError(f"{prompt.id} needs a {prompt.context.__name__}")
    template = _env(directory).get_template(prompt.filename)
    return template.render(**context.model_dump(mode="json"))


# The one repair prompt, shared by every task: sent once when a reply was not valid.
REPAIR = "repair_json.v1"


def render_repair(
    prompt: Prompt[C, R], reply: str, error: str, *, directory: Path = PROMPTS_DIR
) -> str:
    """The repair request for ``prompt``: its schema, the invalid reply, "JSON only"."""
    template = _env(directory).get_template(f"{REPAIR}.md.j2")
    return template.render(
        schema=json.dumps(prompt.response.model_json_schema(), separators=(",", ":")),
        reply=reply[:4000],
        error=error[:800],
    )
