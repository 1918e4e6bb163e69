"""Runbook links of routerwatch alerts, and the names of the alerts the scheduler raises.

Every alert, whether a Prometheus rule (``alerts/routerwatch.rules.yml``) or raised by the
scheduler through :class:`~routerwatch.alerting.client.AlertManagerClient`, has one
``## AlertName`` section in ``alerts/runbooks/README.md``. Markdown renderers (GitHub, GitLab,
mkdocs) turn that heading into the anchor ``#alertname`` (lower case), so the runbook URL of an
alert is ``<base>#<alertname in lower case>``.

The runbook URL is always absolute, so that a link in a page, a chat notification or an email
opens from anywhere. The base defaults to :data:`DEFAULT_RUNBOOK_BASE_URL`, the runbooks' page
in the project's repository (:data:`REPOSITORY_URL`; when ``pyproject.toml`` names a repository
under ``[project.urls]``, a unit test checks it is the same); a deployment that publishes its own copy sets
``ROUTERWATCH_SCHEDULER__RUNBOOK_BASE_URL`` (or passes ``runbook_base_url`` to :func:`runbook_url`
or to the client), which must be an absolute http(s) URL (:func:`check_runbook_base_url`). The
Prometheus rule files carry the default base as written-out text;
``tests/unit/test_alerting_runbooks.py`` fails when a rule's ``runbook_url`` differs from
:func:`runbook_url` or an alert has no runbook section.
"""

from __future__ import annotations

import re
import urllib.parse

#: Where the runbooks live, relative to the repository root.
RUNBOOK_PATH = "alerts/runbooks/README.md"

#: The project's repository on its code host, the one place it is written in the code. When
#: pyproject.toml names a repository under ``[project.urls]``, a unit test checks it is this URL.
REPOSITORY_URL = "https://github.com/routerwatch/routerwatch"

#: Default base of runbook URLs: the runbooks' page in the repository, an absolute URL. Override it
#: with ``ROUTERWATCH_SCHEDULER__RUNBOOK_BASE_URL`` where the runbooks are published elsewhere.
DEFAULT_RUNBOOK_BASE_URL = f"{REPOSITORY_URL}/blob/main/{RUNBOOK_PATH}"

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


def check_runbook_base_url(base_url: str) -> str:
    """``base_url`` if it is an absolute http(s) URL with a host; else :class:`ValueError` saying why.

    A relative base (a path such as ``alerts/runbooks/README.md``) would give links that open
    nowhere outside a checkout of the repository.
    """
    text = str(base_url)
    example = f"for example {DEFAULT_RUNBOOK_BASE_URL}"
    if not text.strip() or text != text.strip() or any(c.isspace() for c in text):
        raise ValueError(f"runbook base URL {text!r} is empty or has whitespace; it must be an absolute http(s) URL, {example}")
    parts = urllib.parse.urlsplit(text)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f"runbook base URL {text!r} is not an absolute http(s) URL (scheme and host), {example}"
        )
    return text


def runbook_url(alertname: str, base_url: str | None = None) -> str:
    """``<base_url>#<anchor>``, an absolute URL; ``base_url`` defaults to :data:`DEFAULT_RUNBOOK_BASE_URL`.

    Any fragment already on ``base_url`` is replaced. Raises :class:`ValueError` for a name
    that is not CamelCase with the ``Routerwatch`` prefix, or a ``base_url`` that is not an
    absolute http(s) URL (:func:`check_runbook_base_url`).
    """
    base = check_runbook_base_url(DEFAULT_RUNBOOK_BASE_URL if base_url is None else base_url).split("#", 1)[0]
    return f"{base}#{runbook_anchor(alertname)}"


def rules_with_base(rules_text: str, base_url: str) -> str:
    """A Prometheus rule file whose ``runbook_url`` annotations use ``base_url`` instead of the default base.

    The rule files in ``alerts/`` are written with :data:`DEFAULT_RUNBOOK_BASE_URL`; a
    deployment whose runbooks are published elsewhere renders them with its own base (the same
    value as ``ROUTERWATCH_SCHEDULER__RUNBOOK_BASE_URL``). Raises :class:`ValueError` for a base
    that is not an absolute http(s) URL.
    """
    base = check_runbook_base_url(base_url).split("#", 1)[0]
    pattern = re.compile(r"^(\s*runbook_url:\s*)" + re.escape(DEFAULT_RUNBOOK_BASE_URL) + "#", flags=re.MULTILINE)
    return pattern.sub(lambda m: f"{m.group(1)}{base}#", rules_text)


def main(argv: list[str] | None = None) -> int:
    """``python -m routerwatch.alerting.runbooks --base-url URL < rules.yml > deployed.rules.yml``."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(
        prog="python -m routerwatch.alerting.runbooks",
        description="Print a Prometheus rule file (stdin) with its runbook_url annotations on another base.",
    )
    parser.add_argument("--base-url", required=True, help="absolute http(s) URL of the runbooks page")
    args = parser.parse_args(argv)
    try:
        sys.stdout.write(rules_with_base(sys.stdin.read(), args.base_url))
    except ValueError as exc:
        print(f"{parser.prog}: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
