"""Alertmanager's HTTP API v2 as this package calls it: one JSON request, and URLs that carry credentials.

An Alertmanager is configured by its base URL (with any route prefix), optionally with basic
auth as ``http://user:password@host:9093``. :func:`split_auth` turns such a URL into the base
to request and the ``Authorization`` header; :func:`redact_url` is the form to log, show or
persist, since credentials must never leave the configuration.
"""

from __future__ import annotations

import base64
import http.client
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from routerwatch.alerting.errors import AlertmanagerUnavailable, AlertRejected


def redact_url(url: str) -> str:
    """``url`` without its ``user:password@`` part (unchanged when it has none)."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def split_auth(url: str) -> tuple[str, dict[str, str]]:
    """The base URL to request (no credentials, no trailing slash) and the headers it needs.

    ``user:password@`` moves into a basic ``Authorization`` header; without credentials the
    headers are empty.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.username is None:
        return url.rstrip("/"), {}
    token = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
    header = {"Authorization": "Basic " + base64.b64encode(token.encode()).decode()}
    return redact_url(url).rstrip("/"), header


def build_opener(use_env_proxy: bool) -> urllib.request.OpenerDirector:
    """The opener to pass to :func:`request`: environment proxies ignored unless ``use_env_proxy``."""
    handlers: list[Any] = [] if use_env_proxy else [urllib.request.ProxyHandler({})]
    return urllib.request.build_opener(*handlers)


def request(
    opener: urllib.request.OpenerDirector,
    method: str,
    base: str,
    path: str,
    headers: dict[str, str],
    body: Any,
    timeout: float,
) -> Any:
    """Send ``body`` (None: no body) as JSON to ``base + path`` and return the decoded JSON reply.

    An empty reply returns None; ``timeout`` is at least 0.1 s. Raises :class:`AlertRejected`
    on HTTP 400 and 422 (the payload itself is refused: sending it again cannot succeed) and
    :class:`AlertmanagerUnavailable` on every other failure (other HTTP statuses, network
    errors, a reply that is not JSON), which a caller may retry. Messages name the URL
    without credentials.
    """
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        base + path,
        data=data,
        method=method,
        headers={"Content-Type": "application/json", "Accept": "application/json", "User-Agent": "routerwatch-alerting", **headers},
    )
    try:
        with opener.open(req, timeout=max(timeout, 0.1)) as response:
            raw = response.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read()[:500].decode(errors="replace").strip()
        message = f"{method} {redact_url(base)}{path.split('?')[0]}: HTTP {exc.code} {detail}".rstrip()
        if exc.code in (400, 422):
            # The payload itself is refused: sending it again cannot succeed.
            raise AlertRejected(message) from exc
        # 5xx and 429, but also 401/403/404: credentials or a route prefix can be fixed
        # while the alerts wait in the queue, so keep them and retry.
        raise AlertmanagerUnavailable(message) from exc
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        raise AlertmanagerUnavailable(f"{method} {redact_url(base)}{path.split('?')[0]}: {reason}") from exc
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise AlertmanagerUnavailable(f"{method} {redact_url(base)}{path}: not JSON: {raw[:200]!r}") from exc
