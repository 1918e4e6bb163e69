"""Every alert has a runbook, and every alert rule has what on-call needs (kubernetes-mixin's check).

Alert names come from the Prometheus rule files (``alerts/*.rules.yml``) and from the
scheduler's registry (``SCHEDULER_ALERT_NAMES``). Each needs a ``## Name`` section in
``alerts/runbooks/README.md``; this test fails when one is missing. The rule files are read
with a minimal parser of the layout they use (PyYAML is not a dependency); ``promtool check
rules`` (tests/integration/test_alert_rules.py) validates them as YAML and PromQL.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from routerwatch.alerting.runbooks import (
    ALERT_NAME_RE,
    DEFAULT_RUNBOOK_BASE_URL,
    RUNBOOK_PATH,
    SCHEDULER_ALERT_NAMES,
    runbook_anchor,
    runbook_url,
)

REPO = Path(__file__).resolve().parents[2]
ALERTS = REPO / "alerts"
RUNBOOKS = REPO / RUNBOOK_PATH
RULE_FILES = sorted(p for p in ALERTS.glob("*.rules.yml"))
PARTS = ("**Meaning.**", "**Confirm.**", "**Likely causes.**", "**What to do.**")


def parse_rules(text: str) -> list[dict]:
    """Rules of a Prometheus rule file: kind, name, and the labels / annotations maps.

    Enough YAML for the layout of our rule files: ``- alert:`` / ``- record:`` items whose keys
    sit two spaces deeper, with ``labels:`` / ``annotations:`` entries two spaces deeper again.
    A folded value (``>-``, ``|``) counts as set when the next line carries text.
    """
    rules: list[dict] = []
    current: dict | None = None
    section: str | None = None
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        indent = len(line) - len(line.lstrip())
        item = re.match(r"^(\s*)- (alert|record):\s*(\S+)\s*$", line)
        if item:
            current = {"kind": item.group(2), "name": item.group(3), "indent": indent, "keys": set(), "labels": {}, "annotations": {}}
            rules.append(current)
            section = None
            continue
        if current is None:
            continue
        if indent <= current["indent"]:
            current, section = None, None  # the next group, or the end of the rules list
            continue
        key = re.match(r"^\s*([A-Za-z_][A-Za-z0-9_]*):\s*(.*?)\s*$", line)
        if not key:
            continue
        name, value = key.group(1), key.group(2)
        if indent == current["indent"] + 2:
            current["keys"].add(name)
            section = name if name in ("labels", "annotations") else None
        elif section and indent == current["indent"] + 4:
            if value in (">-", ">", "|", "|-"):
                following = lines[i + 1] if i + 1 < len(lines) else ""
                deeper = len(following) - len(following.lstrip()) > indent
                value = following.strip() if deeper else ""
            current[section][name] = value.strip("'\"")
    return rules


def runbook_sections(text: str) -> list[str]:
    return re.findall(r"^## (\S+)\s*$", text, flags=re.MULTILINE)


def missing_runbooks(names: list[str] | tuple[str, ...], runbook_text: str) -> list[str]:
    sections = set(runbook_sections(runbook_text))
    return sorted(set(names) - sections)


def alert_rules() -> list[dict]:
    return [rule for path in RULE_FILES for rule in parse_rules(path.read_text()) if rule["kind"] == "alert"]


RULE_ALERT_NAMES = sorted({rule["name"] for rule in alert_rules()})
ALL_ALERT_NAMES = sorted(set(RULE_ALERT_NAMES) | set(SCHEDULER_ALERT_NAMES))


def test_the_parser_sees_every_alert_rule() -> None:
    assert RULE_FILES, "no alerts/*.rules.yml"
    for path in RULE_FILES:
        text = path.read_text()
        expected = len(re.findall(r"^\s*- alert:", text, flags=re.MULTILINE))
        assert len([r for r in parse_rules(text) if r["kind"] == "alert"]) == expected, path.name
    assert len(RULE_ALERT_NAMES) >= 8


@pytest.mark.parametrize("name", ALL_ALERT_NAMES)
def test_every_alert_has_a_runbook_section(name: str) -> None:
    assert missing_runbooks([name], RUNBOOKS.read_text()) == [], f"{name} has no '## {name}' section in {RUNBOOK_PATH}"


def test_the_check_fails_when_a_runbook_is_missing() -> None:
    text = "# runbooks\n\n## RouterwatchIngestPaused\n\ntext\n\n### RouterwatchNotAHeading\n"
    assert missing_runbooks(["RouterwatchIngestPaused", "RouterwatchNotAHeading"], text) == ["RouterwatchNotAHeading"]
    broken = RUNBOOKS.read_text().replace("## RouterwatchIngestPaused\n", "## Something else\n")
    assert missing_runbooks(ALL_ALERT_NAMES, broken) == ["RouterwatchIngestPaused"]


def test_runbook_sections_are_unique_and_complete() -> None:
    text = RUNBOOKS.read_text()
    sections = runbook_sections(text)
    assert len(sections) == len(set(sections)), "a heading appears twice: its anchor would be ambiguous"
    bodies = re.split(r"^## \S+\s*$", text, flags=re.MULTILINE)[1:]
    for name, body in zip(sections, bodies):
        if not name.startswith("Routerwatch"):
            continue
        for part in PARTS:
            assert part in body, f"runbook section {name} lacks {part}"
    # Runbooks only for alerts that exist: a stale section misleads on-call.
    stale = {s for s in sections if s.startswith("Routerwatch")} - set(ALL_ALERT_NAMES)
    assert not stale, f"runbook sections without an alert: {sorted(stale)}"


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda r: f"{r['name']}-{r['labels'].get('severity')}-{r['labels'].get('long_window', '')}")
def test_every_alert_rule_has_severity_summary_description_and_runbook(rule: dict) -> None:
    name = rule["name"]
    assert ALERT_NAME_RE.match(name), f"{name}: CamelCase with the Routerwatch prefix"
    assert {"expr", "labels", "annotations"} <= rule["keys"], f"{name} lacks {({'expr', 'labels', 'annotations'} - rule['keys'])}"
    assert rule["labels"].get("severity") in ("critical", "warning"), f"{name}: severity critical (page) or warning (ticket)"
    for key in ("summary", "description", "runbook_url"):
        assert rule["annotations"].get(key), f"{name} lacks the {key} annotation"
    assert rule["annotations"]["runbook_url"] == runbook_url(name), f"{name}: runbook_url must be {runbook_url(name)}"


def test_scheduler_registry() -> None:
    assert len(SCHEDULER_ALERT_NAMES) == len(set(SCHEDULER_ALERT_NAMES))
    assert all(ALERT_NAME_RE.match(name) for name in SCHEDULER_ALERT_NAMES)
    assert "RouterwatchEscalationDrift" in SCHEDULER_ALERT_NAMES
    # A Prometheus rule and a scheduler detector must not share a name: one runbook, one meaning.
    assert not set(SCHEDULER_ALERT_NAMES) & set(RULE_ALERT_NAMES)


def test_runbook_url_is_base_plus_lowercase_anchor() -> None:
    assert runbook_anchor("RouterwatchEscalationDrift") == "routerwatchescalationdrift"
    assert runbook_url("RouterwatchIngestPaused") == f"{DEFAULT_RUNBOOK_BASE_URL}#routerwatchingestpaused"
    base = "https://code.example/routerwatch/blob/main/alerts/runbooks/README.md"
    assert runbook_url("RouterwatchCanaryNoAnswer", base) == f"{base}#routerwatchcanarynoanswer"
    assert runbook_url("RouterwatchCanaryNoAnswer", base + "#old") == f"{base}#routerwatchcanarynoanswer"
    with pytest.raises(ValueError):
        runbook_url("escalation_drift")


def test_scope_convention_is_documented_and_used_by_the_example_config() -> None:
    text = RUNBOOKS.read_text()
    assert 'scope="tier"' in text and 'scope="category"' in text
    config = (ALERTS / "alertmanager.example.yml").read_text()
    assert 'source_matchers: [scope="tier"]' in config and 'target_matchers: [scope="category"]' in config
