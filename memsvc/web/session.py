"""Admin sign-in sessions: an HMAC-signed cookie naming the key, its tenant and a CSRF token.

The cookie holds no secret: only ids, the tenant's name, an expiry and the per-session CSRF
token, signed with a key from ``settings.session_secret`` or, when unset, a random secret
kept in ``<data dir>/session.secret`` (mode 600). Replicas that share sessions must share
``MEMSVC_SESSION_SECRET``. Revoking the key ends its sessions, and signing out ends the
session for good (``revoked_session``; both checked on every request).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import secrets
import time
import uuid
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from memsvc.schemas import Role
from memsvc.state import AppState
from memsvc.store.tenants import Principal

ROLES: frozenset[str] = frozenset({"operator", "admin", "member"})
COOKIE = "memsvc_admin"
LOGIN_CSRF_COOKIE = "memsvc_login_csrf"
COOKIE_PATH = "/admin"
TTL_S = 12 * 3600
_EXTRAS_KEY = "web.session_key"


@dataclass(frozen=True)
class WebSession:
    """A signed-in operator: the key's tenant and rights, and the session's CSRF token."""

    tenant_id: uuid.UUID
    tenant_name: str
    key_id: uuid.UUID
    role: Role
    csrf: str
    expires: int

    @property
    def session_id(self) -> str:
        """The session's id where it is recorded (signed out): a hash, so the CSRF token
        itself is never stored."""
        return hashlib.sha256(b"memsvc session " + self.csrf.encode()).hexdigest()

    @property
    def principal(self) -> Principal:
        """The same principal an API call with this key would have."""
        return Principal(tenant_id=self.tenant_id, key_id=self.key_id, role=self.role)

    @property
    def admin(self) -> bool:
        """A tenant admin or the operator."""
        return self.principal.admin

    @property
    def operator(self) -> bool:
        """The operator key (sees the tenants page)."""
        return self.principal.operator


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _load_or_create(path: Path) -> bytes:
    """The secret in ``path``, created (mode 600) on first use; safe against a racing writer."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip().encode()
    value = secrets.token_hex(32)
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")
    return value.encode()


async def signing_key(state: AppState) -> bytes:
    """The cookie signing key of this process (derived, so the raw secret signs nothing)."""
    cached = state.extras.get(_EXTRAS_KEY)
    if isinstance(cached, bytes):
        return cached
    configured = state.settings.session_secret
    if configured is not None and configured.get_secret_value():
        secret = configured.get_secret_value().encode()
    else:
        secret = await asyncio.to_thread(
            _load_or_create, state.settings.data_dir / "session.secret"
        )
    key = hmac.new(secret, b"memsvc admin session v1", hashlib.sha256).digest()
    state.extras[_EXTRAS_KEY] = key
    return key


def _sign(key: bytes, payload: str) -> str:
    return _b64(hmac.new(key, payload.encode(), hashlib.sha256).digest())


def encode(key: bytes, principal: Principal, tenant_name: str, *, now: float | None = None) -> str:
    """A fresh session cookie value for ``principal`` (with a new CSRF token)."""
    expires = int((now if now is not None else time.time()) + TTL_S)
    body = [
        str(principal.tenant_id),
        tenant_name,
        str(principal.key_id),
        principal.role,
        secrets.token_urlsafe(24),
        expires,
    ]
    payload = _b64(json.dumps(body, separators=(",", ":")).encode())
    return f"{payload}.{_sign(key, payload)}"


def decode(key: bytes, value: str | None, *, now: float | None = None) -> WebSession | None:
    """The session in a cookie value, or None when absent, tampered with or expired."""
    if not value or value.count(".") != 1:
        return None
    payload, sig = value.split(".")
    if not hmac.compare_digest(sig, _sign(key, payload)):
        return None
    try:
        tenant, name, key_id, role, csrf, expires = json.loads(_unb64(payload))
        if role not in ROLES:
            return None  # a cookie from before roles: sign in again
        session = WebSession(
            tenant_id=uuid.UUID(tenant),
            tenant_name=str(name),
            key_id=uuid.UUID(key_id),
            role=role,
            csrf=str(csrf),
            expires=int(expires),
        )
    except (ValueError, TypeError):
        return None
    if session.expires <= (now if now is not None else time.time()):
        return None
    return session


def token_matches(expected: str, presented: str | None) -> bool:
    """Constant-time comparison of CSRF tokens; a missing token never matches."""
    return bool(presented) and hmac.compare_digest(expected.encode(), (presented or "").encode())


class SignInThrottle:
    """Failed sign-ins per client address in a sliding window (per process): after
    ``max_failures`` within ``window_s`` the address is refused until the oldest ages out.
    Keys are long random secrets, so this is against noise and log floods as much as
    guessing; a success clears the address."""

    def __init__(self, *, max_failures: int = 10, window_s: float = 300.0) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, client: str, now: float) -> deque[float]:
        times = self._failures.setdefault(client, deque())
        while times and times[0] <= now - self.window_s:
            times.popleft()
        return times

    def wait_s(self, client: str) -> float:
        """Seconds until ``client`` may try again (0: now)."""
        now = time.monotonic()
        times = self._recent(client, now)
        if len(times) < self.max_failures:
            return 0.0
        return times[0] + self.window_s - now

    def failed(self, client: str) -> None:
        if len(self._failures) > 10_000:  # bounded memory under a flood of addresses
            self._failures.clear()
        now = time.monotonic()
        self._recent(client, now).append(now)

    def succeeded(self, client: str) -> None:
        self._failures.pop(client, None)
