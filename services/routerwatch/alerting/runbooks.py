"""Runbook links of routerwatch alerts, and the names of the alerts the scheduler raises.

Every alert, whether a Prometheus rule (``alerts/routerwatch.rules.yml``) or raised by the
scheduler through :class:`~routerwatch.alerting.client.AlertManagerClient`, has one
``## AlertName`` section in ``alerts/runbooks/README.md``. Markdown renderers (GitHub, GitLab,
mkdocs) turn that heading into the anchor ``#alertname`` (lower case), so the runbook URL of an
alert is ``<base>#<alertname in lower case>``.

The base defaults to the file's path inside the repository; a deployment that publishes the
repository passes its own base (for example the README's URL on the code host) to
:func:`runbook_url` or to the client. The Prometheus rule files carry the same default prefix;
``tests/unit/test_alerting_runbooks.py`` fails when an alert has no runbook section.
"""

from __future__ import annotations

import re

#: Where the runbooks live, relative to the repository root.
RUNBOOK_PATH = "alerts/runbooks/README.md"

#: Default base of runbook URLs (override it with the URL where the repository is published).
DEFAULT_RUNBOOK_BASE_URL = RUNBOOK_PATH

#: Every alert name the scheduler raises through Alertmanager's API. Adding a detector means
#: adding its name here and a ``## Name`` section to the runbooks, or the unit tests fail.
SCHEDULER_ALERT_NAMES: tuple[str, ...] = (
    "RouterwatchEscalationDrift",
    "RouterwatchEscalationSurge",
    "RouterwatchLatencyBudgetBurn",
    "RouterwatchFailureModeShift",
    "RouterwatchTenantAnomaly",
    "RouterwatchShadowQualityDrop",
    "RouterwatchExperimentConfound",
    "RouterwatchRouterSilent",
    "RouterwatchCanaryTierFlip",
    "RouterwatchCanaryAnswerFailure",
    "RouterwatchCanaryNoAnswer",
)

#: CamelCase with the product prefix (kubernetes-mixin style); also what Alert validates.
ALERT_NAME_RE = re.compile(r"^Routerwatch[A-Z][A-Za-z0-9]*$")


def runbook_anchor(alertname: str) -> str:
    """The anchor of ``## alertname`` in the runbooks: the name in lower case."""
    if not ALERT_NAME_RE.match(alertname):
        raise ValueError(f"alert name {alertname!r} is not CamelCase with the Routerwatch prefix")
    return alertname.lower()


def runbook_url(alertname: str, base_url: str | None = None) -> str:
    """``<base_url>#<anchor>``; ``base_url`` defaults to :data:`DEFAULT_RUNBOOK_BASE_URL`.

    Any fragment already on ``base_url`` is replaced. Raises :class:`ValueError` for a name
    that is not CamelCase with the ``Routerwatch`` prefix.
    """
    base = (base_url or DEFAULT_RUNBOOK_BASE_URL).split("#", 1)[0]
    return f"{base}#{runbook_anchor(alertname)}"
