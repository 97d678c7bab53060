"""The request/response core shared by ``MemoryClient`` and ``AsyncMemoryClient``.

A method call becomes a ``Call``: method, path, query, body, headers, how to parse the
answer and whether a retry is safe. The clients only move bytes and sleep; encoding,
retry decisions, backoff, error mapping and parsing live here, written once.
"""

from __future__ import annotations

import json
import math
import os
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Generic, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from memsvc.errors import MemsvcError, error_from_wire, status_of
from memsvc.schemas import AskResponse, Page, TraceStep
from memsvc.sdk._errors import InvalidResponse, TransportError
from memsvc.sdk._types import ID

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

API_KEY_ENV = "MEMSVC_API_KEY"
IDEMPOTENCY_HEADER = "Idempotency-Key"
RETRY_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
RETRY_STATUSES = frozenset({429, 502, 503, 504})
# The request never left this machine: retrying cannot apply it twice, whatever the method.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# The request may have reached the server: retry only calls that are safe to repeat.
MAYBE_SENT = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


@dataclass(frozen=True, slots=True)
class Call(Generic[T_co]):
    """One API call, described before it is sent: the unit both clients execute."""

    method: str
    path: str
    parse: Callable[[httpx.Response], T_co]
    params: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    retry_safe: bool = False
    # Non-2xx statuses whose body is a normal answer (``/readyz`` answers 503 with Health).
    answers: frozenset[int] = frozenset()
    # The read timeout the call needs at least, when no per-call timeout is given: an ask
    # may think up to its deadline before the first byte (or between two steps).
    min_read: float | None = None

    @property
    def can_retry(self) -> bool:
        """Whether sending this call twice cannot change the outcome."""
        return (
            self.retry_safe
            or self.method in RETRY_SAFE_METHODS
            or IDEMPOTENCY_HEADER in self.headers
        )

    @property
    def label(self) -> str:
        """``METHOD path``, for error messages."""
        return f"{self.method} {self.path}"


# -- building calls ---------------------------------------------------------------------


def seg(value: ID) -> str:
    """One path segment, escaped so an id can never change the route."""
    return quote(str(value), safe="")


def query(**values: object) -> tuple[tuple[str, str], ...]:
    """Query parameters: ``None`` dropped, sequences repeated, bools and datetimes spelled out."""
    pairs: list[tuple[str, str]] = []
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, str | bytes) or not isinstance(value, Sequence):
            pairs.append((name, _scalar(value)))
        else:
            pairs.extend((name, _scalar(item)) for item in value)
    return tuple(pairs)


def check_keys(given: Mapping[str, object], allowed: frozenset[str], what: str) -> None:
    """Refuse unknown keyword arguments, as Python does, instead of sending them silently."""
    unknown = sorted(set(given) - allowed)
    if unknown:
        raise TypeError(f"unexpected {what}: {', '.join(unknown)}")


def model_from(
    cls: type[M],
    base: M | str | None,
    fields: Mapping[str, object],
    *,
    primary: str | None = None,
) -> M:
    """A request model from a model, its primary field as a string, or keywords (which win)."""
    if isinstance(base, str):
        if primary is None:
            raise TypeError(f"expected {cls.__name__}, got str")
        return cls.model_validate({primary: base, **fields})
    if base is None:
        return cls.model_validate(dict(fields))
    if not isinstance(base, cls):
        raise TypeError(f"expected {cls.__name__}, got {type(base).__name__}")
    if not fields:
        return base
    return cls.model_validate({**base.model_dump(exclude_unset=True), **fields})


def encode(model: BaseModel) -> bytes:
    """A JSON body holding only the fields the caller set (PATCH semantics for updates)."""
    return model.model_dump_json(exclude_unset=True).encode()


def json_call(
    method: str,
    path: str,
    body: BaseModel,
    parse: Callable[[httpx.Response], T],
    *,
    headers: Mapping[str, str] | None = None,
    retry_safe: bool = False,
) -> Call[T]:
    """A call with a JSON body."""
    return Call(
        method,
        path,
        parse,
        body=encode(body),
        headers={"Content-Type": "application/json", **(headers or {})},
        retry_safe=retry_safe,
    )


# -- reading answers --------------------------------------------------------------------


def expect(model: type[M]) -> Callable[[httpx.Response], M]:
    """A parser of a 2xx JSON body into ``model``."""

    def parse(response: httpx.Response) -> M:
        try:
            return model.model_validate_json(response.content)
        except ValidationError as exc:
            label = f"{response.request.method} {response.request.url.path}"
            raise InvalidResponse(
                f"{label}: answer is not a valid {model.__name__}",
                detail=exc.errors(include_url=False, include_input=False),
            ) from exc

    return parse


def no_content(response: httpx.Response) -> None:
    """The parser of a 204 answer."""
    return None


def error_body(response: httpx.Response) -> object:
    """The decoded error body, or its text when it is not JSON (a proxy's HTML page)."""
    try:
        return response.json()
    except ValueError:
        return response.text[:2000] or None


def finish(call: Call[T], response: httpx.Response) -> T:
    """The parsed answer of a call, or its typed ``MemsvcError``."""
    if not response.is_success and response.status_code not in call.answers:
        raise error_from_wire(response.status_code, error_body(response))
    return call.parse(response)


def stream_failed(response: httpx.Response) -> MemsvcError:
    """The typed error of a streamed answer that is not a success (its body read first)."""
    return error_from_wire(response.status_code, error_body(response))


def next_cursor(sent: str | None, page: Page[T]) -> str | None:
    """The cursor of the next page; a cursor the server repeats would loop forever."""
    if page.next_cursor is not None and page.next_cursor == sent:
        raise InvalidResponse("server returned the same cursor twice", detail=sent)
    return page.next_cursor


def timeout_for(call: Call[object], client: httpx.Timeout, given: float | None) -> httpx.Timeout:
    """The timeout of one call: the caller's, else the client's with its read timeout
    raised to ``call.min_read`` (a shorter client default would cut a long ask off)."""
    if given is not None:
        return httpx.Timeout(given)
    if call.min_read is None or client.read is None or client.read >= call.min_read:
        return client
    return httpx.Timeout(
        connect=client.connect, read=call.min_read, write=client.write, pool=client.pool
    )


# -- server-sent events -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ServerEvent:
    """One server-sent event: its type (``message`` when unnamed) and its data."""

    event: str
    data: str


class EventDecoder:
    """Lines of a ``text/event-stream`` in, whole events out (the WHATWG rules: ``field:
    value`` lines, one optional space after the colon, ``:`` comments, ``data`` lines joined
    by newlines, a blank line ends an event, an event without data is dropped)."""

    def __init__(self) -> None:
        self._event = ""
        self._data: list[str] = []

    def feed(self, line: str) -> ServerEvent | None:
        """Take one line (without its line break); the event it completes, if any."""
        if not line:
            event, data = self._event or "message", self._data
            self._event, self._data = "", []
            return ServerEvent(event, "\n".join(data)) if data else None
        name, colon, value = line.partition(":")
        if not name and colon:
            return None  # a comment (keep-alive)
        if value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        return None  # ``id``, ``retry`` and unknown fields mean nothing to an ask


AskItem = TraceStep | AskResponse
"""What ``ask_stream`` yields: each ``TraceStep`` as it happens, then the ``AskResponse``."""


class AskStream:
    """The answer of a streamed ask, read line by line: steps, then the result; an
    ``event: error`` raises its typed ``MemsvcError``, as the same error would have as a
    status; a stream that ends before its result is an ``InvalidResponse``."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.done = False
        self._events = EventDecoder()

    def feed(self, line: str) -> AskItem | None:
        """The item one line completes, if any."""
        event = self._events.feed(line)
        if event is None or self.done:
            return None
        if event.event == "step":
            return self._parse(TraceStep, event.data)
        if event.event == "result":
            self.done = True
            return self._parse(AskResponse, event.data)
        if event.event == "error":
            self.done = True
            body = self._json(event.data)
            err = body.get("error") if isinstance(body, dict) else None
            code = err.get("code") if isinstance(err, dict) else None
            raise error_from_wire(status_of(code), body)
        return None  # an event type of a newer server: skipped

    def close(self) -> None:
        """Call when the stream ends: raises when it ended before its result."""
        if not self.done:
            raise InvalidResponse(f"{self.label}: the event stream ended before its result")

    def _json(self, data: str) -> object:
        try:
            return json.loads(data)
        except ValueError as exc:
            raise InvalidResponse(f"{self.label}: an event is not JSON", detail=data[:200]) from exc

    def _parse(self, model: type[M], data: str) -> M:
        try:
            return model.model_validate_json(data)
        except ValidationError as exc:
            raise InvalidResponse(
                f"{self.label}: event is not a valid {model.__name__}",
                detail=exc.errors(include_url=False, include_input=False),
            ) from exc


def is_event_stream(response: httpx.Response) -> bool:
    """Whether an answer is server-sent events (a server may answer plain JSON instead)."""
    content_type: str = response.headers.get("content-type", "")
    return content_type.startswith("text/event-stream")


# -- retries ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long to wait before repeating a call that is safe to repeat."""

    max_retries: int = 3
    backoff: float = 0.5
    max_backoff: float = 8.0
    max_retry_after: float = 60.0

    def delay(self, retry: int) -> float:
        """Exponential backoff with jitter before retry number ``retry`` (0-based)."""
        cap = min(self.max_backoff, self.backoff * 2.0**retry)
        return cap / 2 + random.uniform(0.0, cap / 2)


class Attempts:
    """Retry bookkeeping for one call: whether to go again, and after how long."""

    def __init__(self, call: Call[object], policy: RetryPolicy) -> None:
        self.call = call
        self.policy = policy
        self.retries = 0

    def after_response(self, response: httpx.Response) -> float | None:
        """Seconds to wait before retrying, or ``None`` to keep this answer."""
        status = response.status_code
        if status not in RETRY_STATUSES or status in self.call.answers:
            return None
        if not self._left(self.call.can_retry):
            return None
        wait = retry_after(response)
        if wait is None:
            wait = self.policy.delay(self.retries)
        elif wait > self.policy.max_retry_after:
            return None  # the server asks for longer than we wait: report its error now
        self.retries += 1
        return wait

    def after_error(self, exc: httpx.TransportError) -> float:
        """Seconds to wait before retrying a transport failure; raises when out of tries."""
        safe = isinstance(exc, NOT_SENT) or (isinstance(exc, MAYBE_SENT) and self.call.can_retry)
        if not self._left(safe):
            tries = self.retries + 1
            raise TransportError(
                f"{self.call.label} failed after {tries} attempt(s): {type(exc).__name__}: {exc}",
                detail={"attempts": tries, "error": type(exc).__name__},
            ) from exc
        wait = self.policy.delay(self.retries)
        self.retries += 1
        return wait

    def _left(self, safe: bool) -> bool:
        return safe and self.retries < self.policy.max_retries


def retry_after(response: httpx.Response) -> float | None:
    """The ``Retry-After`` header in seconds (delta or HTTP date), or ``None``."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else None


# -- client setup -----------------------------------------------------------------------


def client_headers(api_key: str | None, extra: Mapping[str, str] | None) -> dict[str, str]:
    """Default headers: JSON, user agent, bearer key (argument, else ``MEMSVC_API_KEY``)."""
    key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
    headers = {"Accept": "application/json", "User-Agent": f"memsvc-python/{_version()}"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    headers.update(extra or {})
    return headers


def _version() -> str:
    try:
        return version("memsvc")
    except PackageNotFoundError:
        return "0"


def _scalar(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)
