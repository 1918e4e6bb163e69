"""One probe of one canary: send it to the router, learn the serving tier, check the answer.

:func:`probe` never raises for anything the router does (refused connection, timeout, HTTP
error, a body that is not a chat completion): those become a result with ``error`` set, which
the no-answer detector counts. The result is a dict in the CanaryResult contract's shape.

How the serving tier is learned, in order (``tier_source`` records which one answered):

1. a response header (``X-Router-Tier`` by default),
2. a field of the JSON body (dotted path, ``router.tier`` by default),
3. the RoutingDecision the router emitted for the probe, found in ClickHouse by ``canary_id``
   and ``request_id`` (the probe sends both, as ``X-Routerwatch-Canary`` and ``X-Request-Id``).
   The decision travels through Kafka and ingest first, so this waits up to ``decision_wait_s``.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from routerwatch.canary.checks import check_answer
from routerwatch.canary.config import Canary

CANARY_HEADER = "X-Routerwatch-Canary"
REQUEST_ID_HEADER = "X-Request-Id"

#: ``lookup(canary_id, request_id) -> tier or None``: the stored RoutingDecision's final tier.
DecisionLookup = Callable[[str, str], Awaitable[str | None]]


@dataclass(frozen=True)
class ProbeSettings:
    """Where and how to probe; built from :class:`routerwatch.config.CanarySettings`."""

    url: str
    tier_header: str | None = "X-Router-Tier"
    tier_field: str | None = "router.tier"
    decision_wait_s: float = 20.0


def body_field(document: Any, dotted: str) -> Any:
    """``document['a']['b']`` for ``'a.b'``; None when any step is missing."""
    for part in dotted.split("."):
        if not isinstance(document, dict) or part not in document:
            return None
        document = document[part]
    return document


def answer_text(document: Any) -> str | None:
    """The assistant's text of an OpenAI chat completion, or None when the body has none."""
    try:
        content = document["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        return None
    return content if isinstance(content, str) else None


async def probe(
    session: Any,
    canary: Canary,
    *,
    router_id: str,
    settings: ProbeSettings,
    run_id: str,
    lookup: DecisionLookup | None = None,
) -> dict[str, Any]:
    """Probe ``canary`` once through the aiohttp ``session``; returns CanaryResult fields."""
    import aiohttp

    request_id = f"canary-{canary.id}-{uuid.uuid4().hex[:12]}"
    result: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "canary_id": canary.id,
        "run_id": run_id,
        "router_id": router_id,
        "category": canary.labels.get("category"),
        "side": canary.labels.get("side"),
        "expected_tier": canary.expected_tier,
        "check_kind": canary.check.kind.value,
        "request_id": request_id,
    }
    headers = {CANARY_HEADER: canary.id, REQUEST_ID_HEADER: request_id}
    timeout = aiohttp.ClientTimeout(total=canary.schedule.timeout_seconds)
    started = time.perf_counter()
    try:
        async with session.post(settings.url, json=canary.request, headers=headers, timeout=timeout) as response:
            raw = await response.read()
            result["latency_ms"] = round((time.perf_counter() - started) * 1000, 3)
            if response.status >= 400:
                text = raw[:300].decode("utf-8", "replace")
                return {**result, "error": f"HTTP {response.status} from {settings.url}: {text}"}
            header_tier = response.headers.get(settings.tier_header) if settings.tier_header else None
    except asyncio.TimeoutError:
        return {**result, "error": f"no response from {settings.url} within {canary.schedule.timeout_seconds:g}s"}
    except aiohttp.ClientError as exc:
        return {**result, "error": f"request to {settings.url} failed: {exc.__class__.__name__}: {exc}"}
    try:
        document = json.loads(raw)
    except ValueError:
        return {**result, "error": f"response is not JSON: {raw[:200].decode('utf-8', 'replace')!r}"}
    answer = answer_text(document)
    if answer is None:
        return {**result, "error": "response has no choices[0].message.content"}

    tier, source = header_tier, "header"
    if not tier and settings.tier_field:
        found = body_field(document, settings.tier_field)
        tier, source = (str(found), "body") if found else (None, None)
    if not tier and lookup is not None:
        tier, source = await _wait_for_decision(lookup, canary.id, request_id, settings.decision_wait_s), "decision"
    if not tier:
        return {
            **result,
            "error": (
                f"serving tier unknown: no {settings.tier_header or '(no header configured)'} header, no "
                f"{settings.tier_field or '(no field configured)'} body field, and no RoutingDecision for "
                f"request_id {request_id} within {settings.decision_wait_s:g}s"
            ),
        }
    passed, detail = check_answer(canary.check, answer)
    return {
        **result,
        "observed_tier": tier,
        "tier_source": source,
        "answer_passed": passed,
        "check_detail": detail[:500] or None,
    }


async def _wait_for_decision(lookup: DecisionLookup, canary_id: str, request_id: str, wait_s: float) -> str | None:
    deadline = time.monotonic() + wait_s
    delay = 0.25
    while True:
        tier = await lookup(canary_id, request_id)
        if tier or time.monotonic() >= deadline:
            return tier or None
        await asyncio.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 2, 2.0)
