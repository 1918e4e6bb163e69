"""Files the service reads at run time: the migrations and the cookbook queries (``sql/``), the
default price table and the example canary set.

The repository keeps one copy of each, where people look for it (``sql/``,
``deploy/prices.toml``, ``deploy/canaries/example.yml``). A wheel carries them inside the package,
under ``routerwatch/_data/``: the build step :class:`routerwatch._build.BuildPy` copies them there
from :data:`SHIPPED`. A source checkout or an editable install has no ``_data`` and reads them
from the source tree. Nothing here imports beyond the standard library: the build step loads
this file on its own.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

# Name inside routerwatch/_data -> path in the repository (a file or a whole folder).
SHIPPED: dict[str, str] = {
    "sql": "sql",
    "prices.toml": "deploy/prices.toml",
    "canaries/example.yml": "deploy/canaries/example.yml",
}

DATA_DIR = "_data"


def locate(name: str) -> Path:
    """The file or folder ``name`` (a key of :data:`SHIPPED`): the package's copy when installed
    from a wheel, else the source tree's. When neither exists, the package's path, for the
    caller to report as missing."""
    if name not in SHIPPED:
        raise KeyError(f"{name!r} is not package data; known: {', '.join(SHIPPED)}")
    packaged = Path(str(resources.files("routerwatch"))) / DATA_DIR / name
    if packaged.exists():
        return packaged
    source = Path(__file__).resolve().parents[2] / SHIPPED[name]
    if source.exists():
        return source
    return packaged


def sql_dir() -> Path:
    """The folder holding ``migrations/`` and ``queries/``."""
    return locate("sql")


def prices_file() -> Path:
    """The price table used when ``ROUTERWATCH_PRICES_FILE`` is not set."""
    return locate("prices.toml")


def example_canary_set() -> Path:
    """The example canary set (the example router's canaries)."""
    return locate("canaries/example.yml")
