"""Structured logs without content, and errors safe to show a tenant.

Logs are one JSON object a line (``ts``, ``level``, ``logger``, ``msg``, and ``exc`` with
the traceback when there is one). What users wrote never reaches them: the database
engines hide SQL parameters (also in the messages of database errors), and access lines
drop query strings. ``MEMSVC_LOG__DEBUG_CONTENT=true`` lifts both, for debugging only.

A failed job's ``last_error`` (readable by the tenant) is :func:`safe_error`: the exception
class and a one-line message, never SQL, a traceback or a server path; the traceback goes
to the server log only.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import traceback
from datetime import UTC, datetime
from typing import Any

# Access log lines (uvicorn) carry the request target as their third argument.
_ACCESS_LOGGERS = frozenset({"uvicorn.access"})
_PATH = re.compile(r"(?<![\w.])(?:/[\w.\-]+){2,}/?")
MAX_MESSAGE_CHARS = 300


class JsonFormatter(logging.Formatter):
    """One JSON object a line; query strings of access lines dropped unless debugging."""

    def __init__(self, *, debug_content: bool = False) -> None:
        super().__init__()
        self.debug_content = debug_content

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": self._message(record),
        }
        if record.exc_info and record.exc_info[1] is not None:
            line["exc"] = format_exception(record.exc_info[1], debug_content=self.debug_content)
        elif record.exc_text:
            line["exc"] = record.exc_text
        return json.dumps(line, ensure_ascii=False, default=str)

    def _message(self, record: logging.LogRecord) -> str:
        args = record.args
        if (
            not self.debug_content
            and record.name in _ACCESS_LOGGERS
            and isinstance(args, tuple)
            and len(args) >= 3
            and isinstance(args[2], str)
            and "?" in args[2]
        ):
            target = args[2].split("?", 1)[0] + "?…"
            return str(record.msg) % (*args[:2], target, *args[3:])
        return record.getMessage()


def configure(*, level: str = "info", debug_content: bool = False) -> None:
    """Send every log record (memsvc, uvicorn, sqlalchemy) to stderr as JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(debug_content=debug_content))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True


def uvicorn_log_config() -> dict[str, Any]:
    """uvicorn's logging config that leaves its loggers to :func:`configure`."""
    return {"version": 1, "disable_existing_loggers": False}


def _is_database_error(exc: BaseException) -> bool:
    return type(exc).__module__.split(".")[0] in {"sqlalchemy", "psycopg", "asyncpg"}


def _sqlstate(exc: BaseException) -> str | None:
    orig = getattr(exc, "orig", None) or exc
    state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return str(state) if state else None


def format_exception(exc: BaseException, *, debug_content: bool = False) -> str:
    """The traceback of ``exc`` and its causes, for the server log; database errors show
    only their SQLSTATE (Postgres quotes the offending values in its messages)."""
    if debug_content:
        return "".join(traceback.format_exception(exc)).rstrip()
    chain: list[BaseException] = []
    e: BaseException | None = exc
    while e is not None and all(e is not c for c in chain):
        chain.append(e)
        e = e.__cause__ or (None if e.__suppress_context__ else e.__context__)
    parts: list[str] = []
    for e in reversed(chain):
        parts.append("Traceback (most recent call last):\n")
        parts.extend(traceback.format_tb(e.__traceback__))
        parts.append(safe_error(e) if _is_database_error(e) else f"{type(e).__name__}: {e}")
        parts.append("\n")
    return "".join(parts).rstrip()


def safe_error(exc: BaseException) -> str:
    """``Class: message`` for a tenant to read: database errors as their SQLSTATE only
    (Postgres quotes values in its messages), other messages cut to their first line with
    file system paths replaced."""
    if _is_database_error(exc):
        state = _sqlstate(exc)
        return f"{type(exc).__name__}: database error" + (f" (SQLSTATE {state})" if state else "")
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    message = _PATH.sub("<path>", message)[:MAX_MESSAGE_CHARS]
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__
