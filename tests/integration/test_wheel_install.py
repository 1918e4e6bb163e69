"""routerwatch installed from its wheel, outside the repository: migrate, ingest, report.

The wheel is built from this checkout and installed (without dependencies) into a fresh virtualenv
in a temporary folder; the dependencies come from the test environment's site-packages, added
after the wheel's own. Every command runs that venv's ``routerwatch`` script from a folder outside
the repository, so the package, its migrations and its price table can only come from the wheel
(an install that found them through the source tree would pass while a user's fails).
"""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
import urllib.request
from importlib import metadata
from pathlib import Path

import pytest
from servicekit import REPO, Env, Serve

pytestmark = pytest.mark.integration

REQUESTS = 40


def _run(cmd: list[str], timeout: float = 300, **kwargs) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kwargs)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    return done


def _setuptools_builds_this_project() -> bool:
    # pyproject.toml needs setuptools>=77 (PEP 639 license); an older one here means an isolated build.
    try:
        return int(metadata.version("setuptools").split(".")[0]) >= 77
    except metadata.PackageNotFoundError:
        return False


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv outside the repository with routerwatch installed from a freshly built wheel."""
    root = tmp_path_factory.mktemp("wheel-install")
    assert not root.resolve().is_relative_to(REPO), "the venv must live outside the repository"
    dist = root / "dist"
    build = [sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "-w", str(dist), "--quiet"]
    if _setuptools_builds_this_project():
        build.append("--no-build-isolation")  # nothing to download
    _run(build, cwd=root)
    (wheel,) = dist.glob("routerwatch-*.whl")

    venv = root / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--quiet", str(wheel)], cwd=root)
    # The dependencies: the test environment's site-packages, searched after the venv's own (a
    # path line in a .pth is appended to sys.path; that folder's own .pth files, the editable
    # install of this checkout among them, are not run).
    purelib = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    (purelib / "zz_routerwatch_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv


def _vars(env: Env) -> dict[str, str]:
    variables = env.vars()
    variables.pop("PYTHONPATH", None)
    return variables


def _cli(venv: Path, env: Env, cwd: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(venv / "bin" / "routerwatch"), *args], env=_vars(env), cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


class WheelServe(Serve):
    """`routerwatch serve` of the wheel's venv, run from a folder outside the repository."""

    def __init__(self, venv: Path, env: Env, cwd: Path) -> None:
        super().__init__(env, cwd / "serve.log")
        self.venv, self.cwd = venv, cwd

    def command(self) -> tuple[list[str], dict[str, str], Path]:
        return [str(self.venv / "bin" / "routerwatch"), "serve"], _vars(self.env), self.cwd


def test_the_wheel_ships_its_schema_and_serves_a_report(wheel_venv, kafka_bootstrap, names, tmp_path):
    work = tmp_path / "work"  # the commands' working folder: no sql/ or deploy/ here
    work.mkdir()
    env = Env(kafka=kafka_bootstrap, names=names, store_url=f"chdb://{tmp_path / 'store'}")

    where = subprocess.run(
        [str(wheel_venv / "bin" / "python"), "-c",
         "import json, routerwatch, routerwatch.packagedata as p; "
         "print(json.dumps([routerwatch.__file__, str(p.sql_dir()), str(p.prices_file()), str(p.example_canary_set())]))"],
        env=_vars(env), cwd=work, capture_output=True, text=True, timeout=60, check=True,
    )
    for path in json.loads(where.stdout):
        assert Path(path).resolve().is_relative_to(wheel_venv.resolve()), f"{path} is not the wheel's"
        assert Path(path).exists(), path

    shipped = sorted(p.name for p in (REPO / "sql/migrations").glob("*.up.sql"))
    migrated = _cli(wheel_venv, env, work, "migrate")
    assert migrated.returncode == 0, migrated.stderr[-4000:]
    assert f"{len(shipped)} migration(s) applied" in migrated.stdout, migrated.stdout
    assert "0001_raw_tables" in migrated.stdout

    serve = WheelServe(wheel_venv, env, work).start()
    try:
        simulated = _cli(wheel_venv, env, work, "simulate", "--requests", str(REQUESTS), "--seed", "11")
        assert simulated.returncode == 0, simulated.stderr[-4000:]
        serve.wait_for("SELECT count() FROM decisions", REQUESTS, timeout=60)

        report = _cli(wheel_venv, env, work, "report", "--format", "json")
        assert report.returncode == 0, report.stderr[-4000:]
        assert sum(r["requests"] for r in json.loads(report.stdout)["routing_mix"]) == REQUESTS
        text = _cli(wheel_venv, env, work, "report")
        assert text.returncode == 0 and "Per tier" in text.stdout, text.stderr[-4000:]
        # The cookbook ships too: a query read from the package's copy runs against the same store,
        # as a file (sql @FILE) and by name (cookbook NAME), over a window holding the whole run.
        cookbook = Path(json.loads(where.stdout)[1]) / "queries" / "requests_by_final_tier.sql"
        mix = _cli(wheel_venv, env, work, "sql", f"@{cookbook}", "--since", "2000-01-01", "--format", "json")
        assert mix.returncode == 0, mix.stderr[-4000:]
        assert sum(row["requests"] for row in json.loads(mix.stdout)) == REQUESTS
        named = _cli(wheel_venv, env, work, "cookbook", "requests_by_final_tier", "--since", "2000-01-01", "--format", "json")
        assert named.returncode == 0, named.stderr[-4000:]
        assert json.loads(named.stdout) == json.loads(mix.stdout)
        # The console's page and assets come from the wheel (package data of routerwatch.console).
        for path, marker in (("/", b"routerwatch console"), ("/console/console.js", b"/console/api/"),
                             ("/console/console.css", b"body")):
            with urllib.request.urlopen(f"http://127.0.0.1:{env.port}{path}", timeout=30) as page:
                assert page.status == 200 and marker in page.read(), path
    finally:
        serve.stop()
