"""Canary sets: versioned YAML files of queries that sit on both sides of the routing boundary.

A file looks like::

    version: "2026-11-22"
    router_id: support-router
    endpoint: http://router.internal:8080/v1/chat/completions
    canaries:
      - id: refund-policy-simple
        request: {model: auto, messages: [{role: user, content: "What is your refund window?"}]}
        expected_tier: small
        check: {kind: regex, pattern: "30 days"}
        schedule: {every_seconds: 300}
        labels: {category: billing, owner: support-team, side: cheap}

Loading validates everything up front; a mistake is a :class:`CanaryConfigError`
naming the file and the canary (``canaries.yml: canary 'refund-policy-simple':
check.pattern: ...``), never a surprise at probe time.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from routerwatch import packagedata
from routerwatch.errors import ConfigError
from routerwatch.events.vocabulary import CheckKind

Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:/@+-]*$", max_length=128)]


class CanaryConfigError(ConfigError):
    """A canary set that cannot be used; the message names the file and the canary."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Check(_Model):
    """How to judge the router's answer. ``kind`` picks the fields that apply."""

    kind: CheckKind
    expected: str | None = Field(default=None, description="exact: the whole answer, whitespace-trimmed")
    pattern: str | None = Field(default=None, description="regex: searched in the answer")
    json_schema: dict[str, Any] | None = Field(default=None, description="json_schema: the answer parsed as JSON")
    value: float | None = Field(default=None, description="numeric: the expected number")
    tolerance: float = Field(default=0.0, ge=0, description="numeric: allowed absolute difference")
    case_sensitive: bool = True

    @model_validator(mode="after")
    def _fields_for_kind(self) -> Check:
        needed = {
            CheckKind.EXACT: "expected",
            CheckKind.REGEX: "pattern",
            CheckKind.JSON_SCHEMA: "json_schema",
            CheckKind.NUMERIC: "value",
        }[self.kind]
        if getattr(self, needed) is None:
            raise ValueError(f"a {self.kind.value} check needs '{needed}'")
        if self.kind is CheckKind.REGEX:
            try:
                re.compile(self.pattern or "")
            except re.error as exc:
                raise ValueError(f"pattern is not a valid regular expression: {exc}") from exc
        if self.kind is CheckKind.JSON_SCHEMA:
            from jsonschema import Draft202012Validator
            from jsonschema.exceptions import SchemaError

            try:
                Draft202012Validator.check_schema(self.json_schema)
            except SchemaError as exc:
                raise ValueError(f"json_schema is not a valid JSON Schema: {exc.message}") from exc
        return self


class Schedule(_Model):
    every_seconds: float = Field(default=300.0, ge=1, description="Probe interval.")
    jitter_seconds: float = Field(default=10.0, ge=0, description="Random delay added to spread probes.")
    timeout_seconds: float = Field(default=30.0, gt=0)


class Canary(_Model):
    """One canary query: what to send, which tier should serve it, how to check the answer."""

    id: Name
    request: dict[str, Any] = Field(description="An OpenAI-compatible chat completion payload.")
    expected_tier: Name
    check: Check
    schedule: Schedule = Schedule()
    labels: dict[Name, str] = Field(default_factory=dict, description="category, owner, side...")

    @model_validator(mode="after")
    def _chat_payload(self) -> Canary:
        messages = self.request.get("messages")
        if not isinstance(messages, list) or not messages:
            raise ValueError("request needs a non-empty 'messages' list (OpenAI chat format)")
        for i, m in enumerate(messages):
            if not isinstance(m, dict) or "role" not in m or "content" not in m:
                raise ValueError(f"request.messages[{i}] needs 'role' and 'content'")
        return self


class CanarySet(_Model):
    version: str = Field(min_length=1)
    router_id: Name
    endpoint: str | None = Field(
        default=None,
        pattern=r"^https?://",
        description="The router's chat completions URL; ROUTERWATCH_CANARY__ROUTER_URL overrides it.",
    )
    canaries: list[Canary] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_ids(self) -> CanarySet:
        seen: set[str] = set()
        for c in self.canaries:
            if c.id in seen:
                raise ValueError(f"canary id {c.id!r} appears twice")
            seen.add(c.id)
        return self


def example_canary_set() -> Path:
    """``deploy/canaries/example.yml`` (the example router's canaries): the package's copy in a
    wheel, the source tree's in a checkout."""
    return packagedata.example_canary_set()


def load_canary_set(path: Path) -> CanarySet:
    """Read and validate one canary set file; errors name the file and the canary."""
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise CanaryConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise CanaryConfigError(f"{path}: not valid YAML: {exc}") from exc
    try:
        return CanarySet.model_validate(data)
    except ValidationError as exc:
        raise CanaryConfigError(f"{path}: " + "; ".join(_where(data, e) for e in exc.errors(include_url=False))) from exc


def _where(data: Any, error: dict[str, Any]) -> str:
    loc = list(error["loc"])
    prefix = ""
    if len(loc) >= 2 and loc[0] == "canaries" and isinstance(loc[1], int):
        try:
            name = data["canaries"][loc[1]].get("id", f"#{loc[1]}")
        except (KeyError, IndexError, TypeError, AttributeError):
            name = f"#{loc[1]}"
        prefix = f"canary {name!r}: "
        loc = loc[2:]
    path = ".".join(str(p) for p in loc) or "<canary>"
    return f"{prefix}{path}: {error['msg']}"
