"""deploy/install-system-deps.sh installs only what is needed and leaves no service running.

The script's orchestration runs here against recording stand-ins for apt-get, id, systemctl,
update-rc.d and service (the real apt-get runs when CI installs a fresh machine with it). The
ports test runs the real deploy/kafka/start.sh in its --print-ports mode.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "deploy" / "install-system-deps.sh"

# Ports the packages the script installs listen on by default (Debian): Prometheus server,
# Alertmanager's web and cluster ports, node-exporter.
PACKAGE_DEFAULT_PORTS = {9090, 9093, 9094, 9100}


def _stub(directory: Path, name: str, body: str) -> None:
    path = directory / name
    path.write_text("#!/bin/bash\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


@pytest.fixture
def fake_root(tmp_path):
    """A PATH with no java/mvn/promtool/alertmanager, where the caller is root and every
    system command records its arguments (apt-get also records the invoke-rc.d policy it saw)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.log"
    policy = tmp_path / "policy-rc.d"
    for real in ("chmod", "rm"):
        os.symlink(shutil.which(real), bin_dir / real)
    _stub(bin_dir, "id", 'echo 0\n')
    _stub(bin_dir, "apt-get", f'''echo "apt-get $*" >> {log}
if [[ "$1" == install ]]; then
  if [[ -x {policy} ]]; then {policy}; echo "policy-rc.d exit $?" >> {log}; else echo "no policy-rc.d" >> {log}; fi
fi
''')
    for name in ("systemctl", "update-rc.d", "service"):
        _stub(bin_dir, name, f'echo "{name} $*" >> {log}\n')
    env = {"PATH": str(bin_dir), "POLICY_RC_D": str(policy), "HOME": str(tmp_path)}
    return env, log, policy


def _run(env):
    return subprocess.run(["/bin/bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=30)


def test_installs_without_recommends_and_leaves_no_service_running(fake_root):
    env, log, policy = fake_root
    done = _run(env)
    assert done.returncode == 0, done.stderr
    calls = log.read_text().splitlines()
    [install] = [c for c in calls if c.startswith("apt-get install")]
    assert "--no-install-recommends" in install.split()
    assert set(install.split()) >= {"openjdk-17-jre-headless", "maven", "prometheus", "prometheus-alertmanager"}
    # No service could start during the install: invoke-rc.d's policy forbade it (exit 101)...
    assert "policy-rc.d exit 101" in calls
    # ...the policy file the script wrote is gone afterwards...
    assert not policy.exists()
    # ...and both services are disabled and stopped, for systemd and sysvinit alike.
    for svc in ("prometheus", "prometheus-alertmanager"):
        assert f"systemctl disable --now {svc}" in calls
        assert f"update-rc.d {svc} disable" in calls
    assert "without its service" in done.stderr


def test_an_existing_policy_file_is_kept(fake_root):
    env, log, policy = fake_root
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    assert _run(env).returncode == 0
    assert policy.read_text() == "#!/bin/sh\nexit 101\n"


def test_not_root_says_what_to_install_and_installs_nothing(fake_root):
    env, log, _ = fake_root
    _stub(Path(env["PATH"]), "id", "echo 1000\n")
    done = _run(env)
    assert done.returncode == 1
    assert "missing system packages: openjdk-17-jre-headless maven prometheus prometheus-alertmanager" in done.stderr
    assert not log.exists()


def _ports(**env) -> dict[str, int]:
    out = subprocess.run(
        [str(REPO / "deploy" / "kafka" / "start.sh"), "--print-ports"],
        env={k: v for k, v in {**os.environ, **env}.items() if not k.startswith("KAFKA_") or k in env},
        capture_output=True, text=True, check=True, timeout=30,
    ).stdout
    return {name: int(port) for name, port in (line.split("=") for line in out.split())}


def test_the_local_broker_stays_clear_of_the_installed_packages_ports():
    ports = _ports()
    assert ports["plaintext"] == 9092
    assert not set(ports.values()) & PACKAGE_DEFAULT_PORTS, ports
    # Two brokers on different client ports get different controller ports, also at the top.
    assert _ports(KAFKA_PORT="9192")["controller"] != ports["controller"]
    top = _ports(KAFKA_PORT="65000")
    assert top["controller"] != top["plaintext"] and 0 < top["controller"] <= 65535


def test_the_demos_own_ports_do_not_collide_with_them_either():
    demo = (REPO / "deploy" / "demo.sh").read_text()
    alertmanager = (REPO / "deploy" / "alertmanager" / "start.sh").read_text()
    assert 'ALERTMANAGER_PORT:-9095' in alertmanager
    assert 'ROUTERWATCH_HTTP__PORT:-9464' in demo
    assert 'EXAMPLE_ROUTER_PORT:-8088' in demo
    used = {9095, 9464, 8088, *_ports().values()}
    assert len(used) == 5 and not used & PACKAGE_DEFAULT_PORTS
