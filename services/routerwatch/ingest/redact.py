"""Redaction of dead-lettered payloads (``ROUTERWATCH_INGEST__DLQ_REDACT``).

A dead letter carries its message's bytes so that it can be fixed and replayed; those bytes can
hold what the contract keeps out of the store (a tenant's name, a prompt pasted into a feature).
An operator names the fields to blank out, as dotted paths into the JSON payload: ``tenant``,
``route.features``, ``attempts.*.model`` (``*`` = every element of a list or every key of an
object). Each value found is replaced by ``"<redacted>"``; the path ``*`` alone keeps no payload
at all. A payload that is not a JSON object cannot be searched, so with any redaction configured
it travels without its bytes. The dead letter's headers keep the original size and SHA-256 and
name what was redacted, so a copy can still be matched with the message on its input topic.
"""

from __future__ import annotations

import json
from typing import Any, Sequence

REDACTED = "<redacted>"


def redact_payload(raw: bytes | None, paths: Sequence[str]) -> tuple[bytes | None, str]:
    """``raw`` with the values at ``paths`` replaced, and a description of what was redacted.

    Returns ``(raw, "")`` unchanged when ``paths`` is empty.
    """
    if not paths or raw is None:
        return raw, ""
    if "*" in paths:
        return b"", "all"
    try:
        document = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return b"", "all (not JSON)"
    if not isinstance(document, dict):
        return b"", "all (not a JSON object)"
    found = [path for path in paths if _blank(document, path.split("."))]
    if not found:
        return raw, "none of " + ",".join(paths)
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode(), ",".join(found)


def _blank(node: Any, parts: list[str]) -> bool:
    """Replace the values at ``parts`` under ``node``; True when at least one was found."""
    head, rest = parts[0], parts[1:]
    if isinstance(node, dict):
        keys = list(node) if head == "*" else [head] if head in node else []
        children = [(node, k) for k in keys]
    elif isinstance(node, list) and head == "*":
        children = [(node, i) for i in range(len(node))]
    else:
        return False
    hit = False
    for parent, key in children:
        if rest:
            hit = _blank(parent[key], rest) or hit
        else:
            parent[key] = REDACTED
            hit = True
    return hit
