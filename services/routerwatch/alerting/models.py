"""The :class:`Alert` the scheduler hands to the Alertmanager client.

An alert is identified by its label set, exactly as Alertmanager identifies it (its
fingerprint is a hash of the labels): two alerts with the same labels are the same alert, and
annotations may change between sends without making a new one. So labels hold only what names
*which* condition fires (alertname, severity, signal, tier, category, direction, router, scope);
the figures (baseline, observed, magnitude, change start, mix/within effects) and the SQL that
reproduces them go in annotations.

Scope convention (used by the inhibition rule in ``alerts/alertmanager.example.yml``): a detector
that fires for a whole tier sets ``scope="tier"`` and no ``category``; its per-category alerts
set ``scope="category"`` and ``category``. A tier-wide alert inhibits the per-category alerts of
the same alertname, router and tier.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from routerwatch.alerting.runbooks import ALERT_NAME_RE

SEVERITIES = ("critical", "warning")
REQUIRED_ANNOTATIONS = ("summary", "description")
_LABEL_NAME_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def format_time(ts: datetime) -> str:
    """RFC 3339 in UTC with milliseconds and a ``Z``: what Alertmanager's API expects."""
    return ts.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(text: str) -> datetime:
    """Parse an RFC 3339 time as Alertmanager writes it (nanoseconds are cut to microseconds)."""
    text = text.strip().replace("Z", "+00:00")
    m = re.match(r"^(.*T\d\d:\d\d:\d\d)(\.\d+)?(.*)$", text)
    if m and m.group(2) and len(m.group(2)) > 7:
        text = m.group(1) + m.group(2)[:7] + m.group(3)
    return datetime.fromisoformat(text).astimezone(timezone.utc)


def _figure(value: float | int | str | datetime | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return format_time(value)
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


class Alert(BaseModel):
    """One alert condition, as the scheduler sees it at one tick.

    ``starts_at`` is when the condition began; it is used only the first time the client sees
    this label set (afterwards the client keeps the first value, across restarts too). Missing,
    it is the ``now`` of that first :meth:`AlertManagerClient.sync`.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: AwareDatetime | None = None
    generator_url: str | None = None

    @field_validator("labels")
    @classmethod
    def _check_labels(cls, labels: dict[str, str]) -> dict[str, str]:
        for name, value in labels.items():
            if not _LABEL_NAME_RE.match(name) or name.startswith("__"):
                raise ValueError(f"label name {name!r} is not a valid Prometheus label name")
            if value == "":
                # Prometheus and Alertmanager treat an empty label as an absent one: say so early.
                raise ValueError(f"label {name!r} is empty: leave it out instead")
        name = labels.get("alertname", "")
        if not ALERT_NAME_RE.match(name):
            raise ValueError(f"alertname {name!r} must be CamelCase with the Routerwatch prefix")
        if labels.get("severity") not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}, got {labels.get('severity')!r}")
        return dict(sorted(labels.items()))

    @model_validator(mode="after")
    def _check_annotations(self) -> Alert:
        missing = [key for key in REQUIRED_ANNOTATIONS if not self.annotations.get(key)]
        if missing:
            raise ValueError(f"alert {self.labels['alertname']} lacks annotations {missing}")
        return self

    @property
    def name(self) -> str:
        return self.labels["alertname"]

    @property
    def severity(self) -> str:
        return self.labels["severity"]

    @property
    def key(self) -> str:
        """The label set as canonical JSON: the client's identity of an alert."""
        return label_key(self.labels)

    @property
    def fingerprint(self) -> str:
        """A short stable hash of the label set (not Alertmanager's own fingerprint function)."""
        return hashlib.sha256(self.key.encode()).hexdigest()[:16]

    @classmethod
    def build(
        cls,
        name: str,
        *,
        severity: Literal["critical", "warning"],
        summary: str,
        description: str,
        signal: str | None = None,
        router: str | None = None,
        tier: str | None = None,
        category: str | None = None,
        direction: Literal["up", "down"] | None = None,
        scope: Literal["tier", "category", "router", "side", "canary"] | None = None,
        labels: dict[str, str] | None = None,
        query: str | None = None,
        baseline: float | str | None = None,
        observed: float | str | None = None,
        magnitude: float | str | None = None,
        change_start: datetime | str | None = None,
        mix_effect: float | str | None = None,
        within_effect: float | str | None = None,
        runbook_url: str | None = None,
        annotations: dict[str, str] | None = None,
        starts_at: datetime | None = None,
        generator_url: str | None = None,
    ) -> Alert:
        """An alert with routerwatch's label and annotation names; ``None`` values are left out.

        ``runbook_url`` may be left to the client, which fills it from its runbook base.
        Raises :class:`pydantic.ValidationError` (a ``ValueError``) on a bad name or label.
        """
        all_labels: dict[str, Any] = {
            "alertname": name,
            "severity": severity,
            "signal": signal,
            "router": router,
            "tier": tier,
            "category": category,
            "direction": direction,
            "scope": scope,
        }
        all_labels.update(labels or {})
        all_annotations: dict[str, Any] = {
            "summary": summary,
            "description": description,
            "runbook_url": runbook_url,
            "query": query,
            "baseline": _figure(baseline),
            "observed": _figure(observed),
            "magnitude": _figure(magnitude),
            "change_start": _figure(change_start),
            "mix_effect": _figure(mix_effect),
            "within_effect": _figure(within_effect),
        }
        all_annotations.update(annotations or {})
        return cls(
            labels={k: str(v) for k, v in all_labels.items() if v is not None},
            annotations={k: str(v) for k, v in all_annotations.items() if v is not None},
            starts_at=starts_at,
            generator_url=generator_url,
        )


def label_key(labels: dict[str, str]) -> str:
    """Canonical JSON of a label set: sorted keys, no spaces."""
    return json.dumps(labels, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
