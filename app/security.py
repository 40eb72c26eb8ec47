"""Who may talk to the app: the Host header and the Origin of a write, checked on every request.

Two attacks on a tool served on localhost, and what stops each:

- **DNS rebinding**: a page on ``attacker.example`` whose name is made to resolve to 127.0.0.1
  sends requests with ``Host: attacker.example``. :class:`HostOriginCheck` answers 403 unless the
  Host names an allowed host (:func:`allowed_hosts`: the loopback names, the address served on,
  and ``--allowed-host`` names; the port is not compared).
- **Cross-origin writes**: a page on another origin (another local port included) posting to the
  API. A request other than GET/HEAD/OPTIONS that carries an ``Origin`` is answered 403 unless
  that origin's host and port are the request's own Host. And no cross-origin reads: the app
  installs Starlette's ``CORSMiddleware`` admitting no origin, so Gradio, which defers to a
  parent app's CORS policy, no longer admits every ``http://localhost:*`` page with credentials.

Requests without ``Origin`` (curl, scripts, the CLI's clients) are not refused on that ground.
The refusal is ``{"error": reason}``, as every refusal of the API.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.middleware.cors import CORSMiddleware

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
ANY_ADDRESS = frozenset({"0.0.0.0", "::", ""})


def host_name(host_header: str) -> str:
    """The name part of a ``Host`` header value, lower-case, without port or IPv6 brackets
    (``"[::1]:7860"`` → ``"::1"``, ``"Example.org:80"`` → ``"example.org"``)."""
    value = host_header.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def allowed_hosts(serve_host: str, extra: list[str] | None = None) -> frozenset[str] | None:
    """The host names a request's ``Host`` may carry.

    Args:
        serve_host: the address served on (``--host``).
        extra: more names (``--allowed-host``: the machine's DNS name, a proxy's).
    Returns:
        The loopback names, ``serve_host`` and ``extra``; ``None`` (any host) when serving on all
        addresses (``0.0.0.0``) with no ``extra`` given: then only the Origin check applies.
    """
    extra = [host_name(h) for h in extra or []]
    if serve_host in ANY_ADDRESS and not extra:
        return None
    names = set(LOOPBACK_NAMES) | set(extra)
    if serve_host not in ANY_ADDRESS:
        names.add(host_name(serve_host) if not serve_host.count(":") > 1 else serve_host.lower())
    return frozenset(names)


class HostOriginCheck:
    """ASGI middleware: 403 for a ``Host`` not in ``hosts`` (``None``: any) and for a write
    (not GET/HEAD/OPTIONS) whose ``Origin`` is not the request's own host and port."""

    def __init__(self, app, hosts: frozenset[str] | None):
        self.app, self.hosts = app, hosts

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host", "")
        if self.hosts is not None and host_name(host) not in self.hosts:
            return await _refuse(send, f"host {host!r} is not served here (--allowed-host names more)")
        origin = headers.get("origin")
        writes = scope.get("method", "GET") not in SAFE_METHODS
        if writes and origin is not None and urlsplit(origin).netloc.lower() != host.lower():
            return await _refuse(send, f"origin {origin!r} may not write here: only pages of this app may")
        return await self.app(scope, receive, send)


async def _refuse(send, reason: str) -> None:
    await JSONResponse({"error": reason}, status_code=403)({"type": "http"}, None, send)


def secure(app: FastAPI, hosts: frozenset[str] | None) -> None:
    """Install the Host and Origin checks (:class:`HostOriginCheck`) and a CORS policy admitting
    no other origin on ``app`` (before Gradio is mounted on it, so that Gradio keeps to it)."""
    app.add_middleware(CORSMiddleware, allow_origins=[])
    app.add_middleware(HostOriginCheck, hosts=hosts)


__all__ = ["HostOriginCheck", "allowed_hosts", "host_name", "secure"]
