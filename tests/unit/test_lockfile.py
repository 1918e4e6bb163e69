"""deploy/requirements.lock pins every dependency pyproject.toml names, and make and the Dockerfile use it."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _name(requirement: str) -> str:
    return re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower().replace("_", "-").replace(".", "-")


def test_every_declared_dependency_is_pinned_to_one_version():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = {_name(r) for r in project["dependencies"]}
    for extra in project["optional-dependencies"].values():
        declared |= {_name(r) for r in extra if not r.startswith("routerwatch")}
    pinned = {}
    for line in (REPO / "deploy/requirements.lock").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version and re.fullmatch(r"[\w.+-]+", version), f"not an exact pin: {line!r}"
            pinned[_name(name)] = version
    assert declared - set(pinned) == set(), "declared but not in the lock: regenerate it with deploy/lock.sh"


def test_make_and_the_dockerfile_install_with_the_lock_and_the_base_image_is_a_release():
    assert "-c deploy/requirements.lock" in (REPO / "Makefile").read_text()
    dockerfile = (REPO / "deploy/Dockerfile").read_text()
    assert "-c deploy/requirements.lock" in dockerfile
    (base,) = re.findall(r"^FROM (\S+)", dockerfile, re.M)
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", base), base


def test_the_service_and_litellm_extras_install_together_without_conflicts():
    # The test environment is the dev extra: the service's stack and LiteLLM side by side, as a team
    # running `pip install 'routerwatch[service,litellm]'` gets them (faust-streaming and LiteLLM
    # both pin click; an older faust's pin conflicted).
    import subprocess
    import sys
    from importlib.metadata import version

    assert version("litellm") and version("faust-streaming")
    check = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr
