"""Every alert has a runbook, and every alert rule has what on-call needs (kubernetes-mixin's check).

Alert names come from the Prometheus rule files (``alerts/*.rules.yml``) and from the
scheduler's registry (``SCHEDULER_ALERT_NAMES``). Each needs a ``## Name`` section in
``alerts/runbooks/README.md``; this test fails when one is missing. The rule files are read
with a minimal parser of the layout they use (PyYAML is not a dependency); ``promtool check
rules`` (tests/integration/test_alert_rules.py) validates them as YAML and PromQL.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
import urllib.parse
from pathlib import Path

import pytest

from routerwatch.alerting.runbooks import (
    ALERT_NAME_RE,
    DEFAULT_RUNBOOK_BASE_URL,
    REPOSITORY_URL,
    RUNBOOK_PATH,
    SCHEDULER_ALERT_NAMES,
    check_runbook_base_url,
    rules_with_base,
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


def _absolute(url: str) -> bool:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def test_the_default_runbook_base_is_an_absolute_url_of_the_runbooks_page() -> None:
    assert _absolute(DEFAULT_RUNBOOK_BASE_URL), DEFAULT_RUNBOOK_BASE_URL
    assert DEFAULT_RUNBOOK_BASE_URL.startswith(REPOSITORY_URL + "/") and DEFAULT_RUNBOOK_BASE_URL.endswith("/" + RUNBOOK_PATH)
    for name in ALL_ALERT_NAMES:
        assert _absolute(runbook_url(name)), name


def test_pyproject_names_the_same_repository_when_it_names_one() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    urls = {k.lower(): v.rstrip("/") for k, v in project.get("urls", {}).items()}
    for key in ("repository", "source", "source code"):
        if key in urls:
            assert urls[key] == REPOSITORY_URL, f"[project.urls] {key} and runbooks.REPOSITORY_URL disagree"


@pytest.mark.parametrize("path", sorted(ALERTS.glob("*.yml")), ids=lambda p: p.name)
def test_every_runbook_url_in_the_rule_files_is_absolute_with_the_default_base(path: Path) -> None:
    values = re.findall(r"^\s*runbook_url:\s*(\S+)\s*$", path.read_text(), flags=re.MULTILINE)
    for value in values:
        assert value.split("#", 1)[0] == DEFAULT_RUNBOOK_BASE_URL, f"{path.name}: {value}"
        anchor = value.split("#", 1)[1]
        assert anchor == anchor.lower() and anchor.startswith("routerwatch"), f"{path.name}: {value}"
    assert values or not path.name.endswith(".rules.yml"), f"{path.name} has no runbook_url"


@pytest.mark.parametrize("base", [
    "alerts/runbooks/README.md", "/alerts/runbooks/README.md", "runbooks#x", "ftp://host/runbooks.md",
    "file:///srv/runbooks.md", "https://", "https:///path", "", " https://h/x", "https://h/a b",
])
def test_a_base_that_is_not_an_absolute_http_url_is_refused(base: str) -> None:
    with pytest.raises(ValueError, match="absolute http"):
        check_runbook_base_url(base)
    with pytest.raises(ValueError, match="absolute http"):
        runbook_url("RouterwatchIngestPaused", base)


def test_an_absolute_base_is_kept() -> None:
    for base in ("https://wiki.example.org/routerwatch/runbooks", "http://10.0.0.5:8080/runbooks.html"):
        assert check_runbook_base_url(base) == base
        assert runbook_url("RouterwatchIngestPaused", base) == f"{base}#routerwatchingestpaused"


def test_the_setting_is_validated_and_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    from routerwatch.config import load_settings
    from routerwatch.errors import ConfigError

    assert load_settings().scheduler.runbook_base_url == DEFAULT_RUNBOOK_BASE_URL
    monkeypatch.setenv("ROUTERWATCH_SCHEDULER__RUNBOOK_BASE_URL", "https://wiki.example.org/runbooks")
    assert load_settings().scheduler.runbook_base_url == "https://wiki.example.org/runbooks"
    monkeypatch.setenv("ROUTERWATCH_SCHEDULER__RUNBOOK_BASE_URL", "alerts/runbooks/README.md")
    with pytest.raises(ConfigError, match="ROUTERWATCH_SCHEDULER__RUNBOOK_BASE_URL: .*absolute http"):
        load_settings()


def test_the_client_refuses_a_relative_base() -> None:
    from routerwatch.alerting import AlertManagerClient
    from routerwatch.alerting.errors import AlertingError

    with pytest.raises(AlertingError, match="absolute http"):
        AlertManagerClient("http://127.0.0.1:9093", runbook_base_url="alerts/runbooks/README.md")


def test_the_rule_files_render_with_another_base() -> None:
    base = "https://wiki.example.org/routerwatch/runbooks"
    for path in RULE_FILES:
        rendered = rules_with_base(path.read_text(), base)
        rules = [r for r in parse_rules(rendered) if r["kind"] == "alert"]
        assert rules
        for rule in rules:
            assert rule["annotations"]["runbook_url"] == runbook_url(rule["name"], base)
        assert DEFAULT_RUNBOOK_BASE_URL + "#" not in rendered
    with pytest.raises(ValueError):
        rules_with_base("", "runbooks/")
    done = subprocess.run([sys.executable, "-m", "routerwatch.alerting.runbooks", "--base-url", base],
                          input=RULE_FILES[0].read_text(), capture_output=True, text=True, check=True)
    assert done.stdout == rules_with_base(RULE_FILES[0].read_text(), base)
    bad = subprocess.run([sys.executable, "-m", "routerwatch.alerting.runbooks", "--base-url", "runbooks/"],
                         input="", capture_output=True, text=True)
    assert bad.returncode == 2 and "absolute http" in bad.stderr
