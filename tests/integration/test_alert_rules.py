"""The Prometheus rules and the example Alertmanager config, checked by the real tools.

`promtool check rules` (syntax, PromQL, templates), `promtool test rules` (every alert at its
`for:` boundary) and `amtool check-config`. A missing tool fails the test: it is a system
package of the suite (deploy/install-system-deps.sh), never a reason to skip.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest
from servicekit import REPO

pytestmark = pytest.mark.integration

ALERTS = REPO / "alerts"
RULE_FILES = sorted(p for p in ALERTS.glob("*.yml") if p.name.endswith(".rules.yml"))
TEST_FILES = sorted(ALERTS.glob("*.test.yml"))


def tool(name: str, package: str) -> str:
    found = shutil.which(name)
    if not found:
        pytest.fail(f"{name} not found: install the Debian package {package} (deploy/install-system-deps.sh)")
    return found


def run(*args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(list(args), capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, f"{' '.join(args)} exited {done.returncode}:\n{done.stdout[-6000:]}\n{done.stderr[-6000:]}"
    return done


def test_there_are_rule_files_and_tests_for_each() -> None:
    assert RULE_FILES, "no alerts/*.rules.yml"
    for rules in RULE_FILES:
        assert rules.with_name(rules.name.replace(".rules.yml", ".rules.test.yml")).exists(), f"{rules.name} has no promtool test"


def test_promtool_check_rules() -> None:
    promtool = tool("promtool", "prometheus")
    done = run(promtool, "check", "rules", *map(str, RULE_FILES))
    assert "SUCCESS" in done.stdout


def test_promtool_test_rules() -> None:
    promtool = tool("promtool", "prometheus")
    done = run(promtool, "test", "rules", *map(str, TEST_FILES))
    assert "FAILED" not in done.stdout + done.stderr


def test_amtool_check_config() -> None:
    amtool = tool("amtool", "prometheus-alertmanager")
    done = run(amtool, "check-config", str(ALERTS / "alertmanager.example.yml"))
    assert "SUCCESS" in done.stdout
