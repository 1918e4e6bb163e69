"""Package data: where the service finds sql/, the price table and the example canary set, and a
migrate that finds no migrations failing with one line instead of reporting a current schema."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

import pytest

from routerwatch import packagedata
from routerwatch.canary.config import example_canary_set, load_canary_set
from routerwatch.cli import main
from routerwatch.errors import ConfigError
from routerwatch.prices import default_prices_file, load_prices
from routerwatch.storage import migrations
from routerwatch.storage.migrations import default_sql_dir

REPO = Path(__file__).resolve().parents[2]


def test_a_checkout_reads_the_repository_copy_of_every_shipped_file():
    assert default_sql_dir() == REPO / "sql"
    assert default_prices_file() == REPO / "deploy/prices.toml"
    assert example_canary_set() == REPO / "deploy/canaries/example.yml"
    assert migrations.load(default_sql_dir() / "migrations")
    assert load_prices(default_prices_file()).version
    assert load_canary_set(example_canary_set()).canaries


def test_the_package_copy_wins_when_there_is_one(monkeypatch, tmp_path):
    # As in a wheel: routerwatch/_data/<name> beside the modules.
    (tmp_path / "_data/sql/migrations").mkdir(parents=True)
    monkeypatch.setattr(packagedata.resources, "files", lambda package: tmp_path)
    assert packagedata.sql_dir() == tmp_path / "_data/sql"
    assert packagedata.prices_file() == REPO / "deploy/prices.toml"  # not in that package: the source tree's
    with pytest.raises(KeyError):
        packagedata.locate("README.md")


def test_every_shipped_file_exists_and_is_in_the_sdist():
    manifest = (REPO / "MANIFEST.in").read_text()
    for name, source in packagedata.SHIPPED.items():
        assert (REPO / source).exists(), source
        assert re.search(rf"^(graft|include) {re.escape(source)}$", manifest, re.M), f"MANIFEST.in lacks {source}"
    cmdclass = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["cmdclass"]
    assert cmdclass["build_py"] == "routerwatch._build.BuildPy"


def test_the_consoles_static_files_are_package_data_and_in_the_sdist():
    from routerwatch.console.routes import STATIC

    static = REPO / "services/routerwatch/console/static"
    names = sorted(name for name, _ in STATIC.values())
    assert sorted(p.name for p in static.iterdir() if p.is_file()) == names
    package_data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert package_data["routerwatch.console"] == ["static/*"]
    manifest = (REPO / "MANIFEST.in").read_text()
    included = re.search(r"^recursive-include services/routerwatch/console/static (.+)$", manifest, re.M)
    assert included, "MANIFEST.in lacks the console's static files"
    for name in names:
        assert f"*{Path(name).suffix}" in included.group(1).split(), name


@pytest.mark.parametrize("layout", ["missing", "empty", "no_up_files"])
def test_load_refuses_a_folder_without_migrations(tmp_path, layout):
    folder = tmp_path / "migrations"
    if layout != "missing":
        folder.mkdir()
    if layout == "no_up_files":
        (folder / "README").write_text("not a migration\n")
    with pytest.raises(ConfigError, match=r"no migrations found: .*migrations .*ROUTERWATCH_SQL_DIR"):
        migrations.load(folder)


def test_migrate_without_migrations_exits_2_with_one_line_and_opens_no_store(monkeypatch, tmp_path, capsys):
    for name in [n for n in os.environ if n.startswith("ROUTERWATCH_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("ROUTERWATCH_SQL_DIR", str(tmp_path / "sql"))
    monkeypatch.setenv("ROUTERWATCH_CLICKHOUSE_URL", f"chdb://{tmp_path / 'store'}")
    assert main(["migrate"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    (line,) = err.strip().splitlines()
    assert line.startswith("routerwatch: ") and "no migrations found" in line and str(tmp_path / "sql" / "migrations") in line
    assert "schema is current" not in line
    assert not (tmp_path / "store").exists()
