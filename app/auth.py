"""Who is signed in: HTTP Basic authentication of every request (the page, Gradio, the API).

``--auth USER:PASSWORD`` (repeatable) and ``--auth-file FILE`` (one ``USER:PASSWORD`` a line;
``#`` comments and blank lines skipped) name the users. The browser asks for the name and
password once (its own Basic dialog) and sends them with every request; a request without
them, or with wrong ones, is answered 401. The user's name reaches the routes as
``scope["ovsam_user"]``: each annotation records it as its author.

Basic authentication sends the password with every request, readable on the wire: serve on a
network only behind TLS (a reverse proxy such as Caddy or nginx terminating HTTPS), or on a
trusted network. Passwords are compared in constant time (:func:`hmac.compare_digest`).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
from pathlib import Path

from fastapi.responses import JSONResponse

REALM = "ovsam-annotator"
MAX_NAME_CHARS = 100


class AuthError(ValueError):
    """A malformed ``--auth`` value or auth file (the message names it)."""


def parse_user(spec: str, where: str = "--auth") -> tuple[str, str]:
    """``"USER:PASSWORD"`` → ``(user, password)``.

    Raises:
        AuthError: no colon, an empty name or password, a name over 100 characters or with a
            control character.
    """
    name, sep, password = spec.partition(":")
    name = name.strip()
    if not sep or not name or not password:
        raise AuthError(f"{where}: expected USER:PASSWORD, got {spec[:40]!r}")
    if len(name) > MAX_NAME_CHARS or any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise AuthError(f"{where}: a user name has at most {MAX_NAME_CHARS} printable characters")
    return name, password


def load_users(specs: list[str] | None = None, files: list[str | Path] | None = None) -> dict[str, str]:
    """The users of ``--auth`` values and ``--auth-file`` files, name → password.

    Raises:
        AuthError: a malformed entry (file and line named), or a name given twice.
        OSError: an unreadable file.
    """
    entries = [(spec, "--auth") for spec in specs or []]
    for file in files or []:
        for n, line in enumerate(Path(file).read_text(encoding="utf-8").splitlines(), start=1):
            if line.strip() and not line.lstrip().startswith("#"):
                entries.append((line.rstrip("\r\n"), f"{file}:{n}"))
    users: dict[str, str] = {}
    for spec, where in entries:
        name, password = parse_user(spec, where)
        if name in users:
            raise AuthError(f"{where}: user {name!r} is named twice")
        users[name] = password
    return users


def is_loopback(host: str) -> bool:
    """Whether serving on ``host`` (``--host``) reaches this machine only."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def credentials(header: str | None) -> tuple[str, str] | None:
    """``(user, password)`` of an ``Authorization: Basic ...`` header value, ``None`` if absent
    or malformed."""
    if not header or header[:6].lower() != "basic ":
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    name, sep, password = decoded.partition(":")
    return (name, password) if sep else None


class BasicAuth:
    """ASGI middleware: every HTTP request and websocket must carry the name and password of
    one of ``users`` (else 401 with ``WWW-Authenticate``, so that browsers ask); the name is
    put in ``scope["ovsam_user"]``."""

    def __init__(self, app, users: dict[str, str]):
        self.app = app
        self.users = {name: password.encode("utf-8") for name, password in users.items()}

    def user(self, scope) -> str | None:
        """The signed-in user of a request scope, ``None`` if it does not authenticate."""
        header = dict(scope.get("headers") or []).get(b"authorization")
        given = credentials(header.decode("latin-1") if header else None)
        if given is None:
            return None
        name, password = given
        expected = self.users.get(name)
        # compare against something of the same kind when the name is unknown: no timing hint
        ok = hmac.compare_digest(password.encode("utf-8"), expected if expected is not None else b"\0" * 16)
        return name if ok and expected is not None else None

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        name = self.user(scope)
        if name is None:
            if scope["type"] == "websocket":
                return await send({"type": "websocket.close", "code": 1008})
            refusal = JSONResponse(
                {"error": "sign in: this app asks for a user name and password (--auth)"},
                status_code=401,
                headers={"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'},
            )
            return await refusal(scope, receive, send)
        scope["ovsam_user"] = name
        return await self.app(scope, receive, send)


__all__ = ["AuthError", "BasicAuth", "credentials", "is_loopback", "load_users", "parse_user"]
