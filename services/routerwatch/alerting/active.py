"""The alerts an Alertmanager has active now, told apart from the ones a silence or an inhibition suppresses.

Alertmanager's ``GET /api/v2/alerts`` returns suppressed alerts too unless asked not to (its
``silenced``, ``inhibited`` and ``unprocessed`` filters default to true), and each alert's
``status.state`` says which it is: ``active`` (notifications go out), ``suppressed`` (a silence
or an inhibition holds them back) or ``unprocessed`` (not yet routed). Only ``active`` alerts
page anyone, so only they are counted as active here; the demo scripts (``deploy/incident.sh``,
``deploy/canary.sh``) count with this module::

    python -m routerwatch.alerting.active http://127.0.0.1:9095 router=incident-router
    python -m routerwatch.alerting.active URL router=example-router --alertname-prefix RouterwatchCanary \\
        --what "canary alert" --expect scope=side      # exit 0 once a side-wide page is active
    python -m routerwatch.alerting.active URL router=example-router --expect-none   # exit 0 once none is

Exit codes: 0 (listed; with ``--expect`` / ``--expect-none``: the wanted state holds), 1 (the
wanted state does not hold), 2 (usage), 3 (Alertmanager did not answer).
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from routerwatch.alerting.errors import AlertmanagerUnavailable

#: The one state in which an alert notifies: neither silenced, inhibited nor unprocessed.
ACTIVE = "active"

#: Labels listed first when an alert is printed (the rest follow in name order).
_WHERE_ORDER = ("scope", "side", "canary", "tier", "category", "direction")


@dataclass
class AlertList:
    """What Alertmanager holds for a query: the ``active`` alerts and the rest (suppressed or unprocessed)."""

    active: list[dict[str, Any]] = field(default_factory=list)
    suppressed: list[dict[str, Any]] = field(default_factory=list)


def is_active(alert: Mapping[str, Any]) -> bool:
    """True when the alert's ``status.state`` is ``active`` (a silenced or inhibited one is ``suppressed``)."""
    return (alert.get("status") or {}).get("state") == ACTIVE


def split(alerts: Iterable[Mapping[str, Any]], alertname_prefix: str = "") -> AlertList:
    """Sort API v2 alerts into active and suppressed, keeping only names that start with ``alertname_prefix``."""
    out = AlertList()
    for alert in alerts:
        if not str(alert.get("labels", {}).get("alertname", "")).startswith(alertname_prefix):
            continue
        (out.active if is_active(alert) else out.suppressed).append(dict(alert))
    return out


def parse_matchers(matchers: Sequence[str] | Mapping[str, str]) -> dict[str, str]:
    """``["router=x", "tier=small"]`` (or a mapping) -> ``{"router": "x", "tier": "small"}``; ValueError otherwise."""
    if isinstance(matchers, Mapping):
        return {str(k): str(v) for k, v in matchers.items()}
    out: dict[str, str] = {}
    for item in matchers:
        name, sep, value = item.partition("=")
        if not sep or not name or name != name.strip():
            raise ValueError(f"matcher {item!r} is not label=value")
        out[name] = value
    return out


def fetch(url: str, matchers: Sequence[str] | Mapping[str, str] = (), *, alertname_prefix: str = "",
          timeout: float = 5.0) -> AlertList:
    """Alertmanager's alerts matching ``label=value`` matchers, split by state (see :func:`split`).

    Suppressed alerts are fetched too, so that a caller can say how many a silence or an
    inhibition holds back; they are never counted as active. Raises
    :class:`~routerwatch.alerting.errors.AlertmanagerUnavailable` when Alertmanager does not answer.
    """
    query = [("filter", f'{name}="{value}"') for name, value in parse_matchers(matchers).items()]
    query += [("active", "true"), ("silenced", "true"), ("inhibited", "true"), ("unprocessed", "true")]
    endpoint = f"{url.rstrip('/')}/api/v2/alerts?{urllib.parse.urlencode(query)}"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(endpoint, timeout=timeout) as response:
            alerts = json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise AlertmanagerUnavailable(f"Alertmanager {url} did not answer GET /api/v2/alerts ({exc})") from None
    return split(alerts, alertname_prefix)


def where(labels: Mapping[str, str], skip: Iterable[str] = ()) -> str:
    """``scope=side, side=cheap, ...``: the labels that tell alerts of one name apart."""
    left = {k: v for k, v in labels.items() if k not in {"alertname", "severity", *skip}}
    order = [k for k in _WHERE_ORDER if k in left] + sorted(k for k in left if k not in _WHERE_ORDER)
    return ", ".join(f"{k}={left[k]}" for k in order)


def render(url: str, alerts: AlertList, matchers: Mapping[str, str], what: str = "alert", runbook: bool = False) -> str:
    """The listing the demo scripts print: the active alerts (counted), then how many are suppressed (not counted)."""
    scope = " for " + ", ".join(f"{k}={v}" for k, v in matchers.items()) if matchers else ""
    lines = [f"Alertmanager {url}: {len(alerts.active)} active {what}(s){scope}"]
    for alert in alerts.active:
        labels = alert.get("labels", {})
        lines.append(f"  {labels.get('alertname')} [{labels.get('severity')}, {ACTIVE}] {where(labels, matchers)}".rstrip())
        annotations = alert.get("annotations", {})
        lines.append(f"    {annotations.get('summary')}")
        if runbook:
            lines.append(f"    runbook: {annotations.get('runbook_url')}")
    if alerts.suppressed:
        lines.append(f"  not counted: {len(alerts.suppressed)} suppressed (silenced, inhibited or not yet processed):")
        for alert in alerts.suppressed:
            labels = alert.get("labels", {})
            state = (alert.get("status") or {}).get("state")
            lines.append(f"    {labels.get('alertname')} [{labels.get('severity')}, {state}] {where(labels, matchers)}".rstrip())
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m routerwatch.alerting.active",
        description="List and count the alerts Alertmanager has active (silenced and inhibited ones are not counted).",
    )
    parser.add_argument("url", help="Alertmanager base URL, e.g. http://127.0.0.1:9093")
    parser.add_argument("matchers", nargs="*", help="label=value, e.g. router=example-router")
    parser.add_argument("--alertname-prefix", default="", help="only alerts whose name starts with this")
    parser.add_argument("--what", default="alert", help='noun of the count line (default "alert")')
    parser.add_argument("--runbook", action="store_true", help="print each alert's runbook_url")
    wanted = parser.add_mutually_exclusive_group()
    wanted.add_argument("--expect", metavar="LABEL=VALUE", help="exit 0 only if an active alert has this label")
    wanted.add_argument("--expect-none", action="store_true", help="exit 0 only if no alert is active")
    parser.add_argument("--timeout", type=float, default=5.0)
    args = parser.parse_args(argv)
    try:
        matchers = parse_matchers(args.matchers)
        expect = parse_matchers([args.expect]) if args.expect else None
    except ValueError as exc:
        print(f"{parser.prog}: {exc}", file=sys.stderr)
        return 2
    try:
        alerts = fetch(args.url, matchers, alertname_prefix=args.alertname_prefix, timeout=args.timeout)
    except AlertmanagerUnavailable as exc:
        print(f"{parser.prog}: {exc}", file=sys.stderr)
        return 3
    print(render(args.url, alerts, matchers, args.what, args.runbook))
    if args.expect_none:
        return 0 if not alerts.active else 1
    if expect is not None:
        (name, value), = expect.items()
        return 0 if any(a.get("labels", {}).get(name) == value for a in alerts.active) else 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
