"""Who may call serve's HTTP endpoints (and the example router's admin API): one aiohttp middleware.

Every request except ``GET /health`` and ``GET /metrics`` (the probes and the scraper, which read
nothing private and change nothing) and the console's static page, script and stylesheet (``GET /``,
``/console/console.js``, ``/console/console.css``: no data) passes two checks, in this order:

1. **CSRF.** A browser lets any web page send a "simple" request to any origin, a local serve's
   included: a POST with a ``text/plain``, form or multipart body needs no preflight. So a request
   is refused (403) when it carries an ``Origin`` that is not this server's own origin, when
   ``Sec-Fetch-Site`` says ``cross-site`` or ``same-site`` (a page on another port of the same host),
   or when a POST has a body that is not ``Content-Type: application/json`` (a type no page can
   send cross-origin without a preflight, which this server never grants). Without a token, the
   ``Host`` must also be a loopback name: a DNS-rebound name makes a foreign page same-origin.
2. **Authentication.** With a token configured (``ROUTERWATCH_HTTP__TOKEN``), the request needs
   ``Authorization: Bearer <token>``; it is compared in constant time and never echoed. 401 names
   what is missing. Serve refuses to start on a non-loopback address without a token
   (:func:`require_token_beyond_loopback`); on loopback without one, requests are allowed, still
   CSRF-checked.

Errors are JSON ``{"error": "..."}``. The decision is a pure function (:meth:`WebGuard.decide`) so
that it is testable without a server; :meth:`WebGuard.middleware` applies it.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from routerwatch.errors import ConfigError

TOKEN_VARIABLE = "ROUTERWATCH_HTTP__TOKEN"
# (method, path) pairs anyone may call: health checks and the Prometheus scrape.
SERVE_OPEN = frozenset({("GET", "/health"), ("HEAD", "/health"), ("GET", "/metrics"), ("HEAD", "/metrics")})
# The console's page, script and stylesheet (routerwatch.console.routes.STATIC): the same files in every
# deployment and no data; the data they fetch (/console/api/*) is guarded like every other endpoint.
CONSOLE_STATIC = ("/", "/console/console.js", "/console/console.css")
SERVE_OPEN = SERVE_OPEN | frozenset((method, path) for path in CONSOLE_STATIC for method in ("GET", "HEAD"))
_WILDCARD_HOSTS = ("", "0.0.0.0", "::", "[::]")
_ALLOWED_FETCH_SITES = ("same-origin", "none")  # "none": typed in the address bar, a bookmark


def is_loopback(host: str) -> bool:
    """True when ``host`` (a bind address or a Host header's name) is reachable from this machine only."""
    name = host.strip().strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False  # a wildcard, an interface address or a name that may resolve anywhere


def require_token_beyond_loopback(host: str, token: str | None, variable: str = TOKEN_VARIABLE) -> None:
    """Raise :class:`ConfigError` (exit code 2) when a server would listen beyond loopback without a token."""
    if not token and not is_loopback(host):
        raise ConfigError(
            f"refusing to listen on {host or '<all interfaces>'} without a token: anyone who reaches the port "
            f"could read data and silence alerts. Set {variable} (a long random secret; clients send it as "
            "'Authorization: Bearer <token>') or listen on 127.0.0.1"
        )


def _host_name(host_header: str) -> str:
    """The name part of a Host header (``[::1]:9464`` -> ``::1``)."""
    value = host_header.strip()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


@dataclass(frozen=True)
class Refusal:
    status: int
    error: str


class WebGuard:
    """The CSRF and bearer-token checks of one server.

    ``token``: the secret (``None`` or empty: no authentication, for loopback only).
    ``open_routes``: (method, path) pairs exempt from both checks. ``guarded_prefixes``: when
    given, only paths starting with one of them are checked (the example router guards its
    ``/admin/`` API, not the chat endpoint its clients call).
    """

    def __init__(
        self,
        token: str | None,
        *,
        open_routes: Collection[tuple[str, str]] = SERVE_OPEN,
        guarded_prefixes: tuple[str, ...] | None = None,
        token_variable: str = TOKEN_VARIABLE,
    ) -> None:
        self._token = token.encode() if token else None
        self.open_routes = frozenset(open_routes)
        self.guarded_prefixes = guarded_prefixes
        self.token_variable = token_variable

    @property
    def authenticates(self) -> bool:
        return self._token is not None

    def guarded(self, method: str, path: str) -> bool:
        if (method.upper(), path) in self.open_routes:
            return False
        return self.guarded_prefixes is None or path.startswith(self.guarded_prefixes)

    def decide(self, method: str, path: str, scheme: str, headers: Mapping[str, str], has_body: bool) -> Refusal | None:
        """Why this request is refused, or ``None`` to let it through. ``headers``: case-insensitive."""
        if not self.guarded(method, path):
            return None
        host = headers.get("Host", "")
        origin = headers.get("Origin")
        if origin is not None and not _same_origin(origin, scheme, host):
            return Refusal(403, f"cross-origin request refused (Origin {_printable(origin)} is not this server's)")
        site = headers.get("Sec-Fetch-Site")
        if site is not None and site.strip().lower() not in _ALLOWED_FETCH_SITES:
            return Refusal(403, f"cross-site request refused (Sec-Fetch-Site: {_printable(site)})")
        if self._token is None and host and not is_loopback(_host_name(host)):
            # Without a token only loopback callers are expected; a foreign name that reaches a loopback
            # port is DNS rebinding (the attacker's page becomes same-origin).
            return Refusal(403, f"Host {_printable(host)} is not a loopback name; set {self.token_variable} to serve other names")
        if method.upper() == "POST" and has_body:
            ctype = headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
            if ctype != "application/json":
                return Refusal(403, f"POST bodies must be Content-Type: application/json (got {_printable(ctype) or 'none'})")
        if self._token is not None:
            given = headers.get("Authorization")
            if not given:
                return Refusal(401, f"missing 'Authorization: Bearer <token>' header (this server requires {self.token_variable})")
            scheme_word, _, credential = given.strip().partition(" ")
            if scheme_word.lower() != "bearer" or not credential.strip():
                return Refusal(401, "the Authorization header must be 'Bearer <token>'")
            if not hmac.compare_digest(credential.strip().encode(), self._token):
                return Refusal(401, f"the bearer token does not match {self.token_variable}")
        return None

    @web.middleware
    async def middleware(self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        refusal = self.decide(request.method, request.path, request.scheme, request.headers, request.body_exists)
        if refusal is None:
            return await handler(request)
        headers = {"WWW-Authenticate": 'Bearer realm="routerwatch"'} if refusal.status == 401 else None
        return web.json_response({"error": refusal.error}, status=refusal.status, headers=headers)


def _same_origin(origin: str, scheme: str, host: str) -> bool:
    if not host or origin.strip().lower() == "null":  # "null": a sandboxed frame or a file:// page
        return False
    parts = urlsplit(origin.strip())
    default = {"http": "80", "https": "443"}
    want = urlsplit(f"{scheme}://{host}")
    try:
        return (
            parts.scheme.lower() == want.scheme.lower()
            and (parts.hostname or "") == (want.hostname or "")
            and str(parts.port or default.get(parts.scheme.lower(), "")) == str(want.port or default.get(scheme, ""))
        )
    except ValueError:  # a malformed port
        return False


def _printable(value: str, limit: int = 100) -> str:
    """A header value quoted for an error message: bounded and without control characters."""
    cleaned = "".join(ch if ch.isprintable() else "?" for ch in value[:limit])
    return repr(cleaned + ("..." if len(value) > limit else ""))


def serve_guard(http: Any) -> WebGuard:
    """The guard of ``routerwatch serve`` from its HttpSettings; :class:`ConfigError` when exposed without a token."""
    token = http.token.get_secret_value() if http.token is not None else None
    require_token_beyond_loopback(http.host, token)
    return WebGuard(token)


def client_headers(token: Any, json_body: bool = True) -> dict[str, str]:
    """Headers a client of serve sends: JSON content type and, when a token is set, the bearer token.

    ``token`` is a SecretStr, a str or None.
    """
    headers = {"Content-Type": "application/json"} if json_body else {}
    value = token.get_secret_value() if hasattr(token, "get_secret_value") else token
    if value:
        headers["Authorization"] = f"Bearer {value}"
    return headers
