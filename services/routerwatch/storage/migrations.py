"""Numbered up/down migrations from ``sql/migrations``, recorded in ``schema_migrations``.

Files are ``NNNN_name.up.sql`` and ``NNNN_name.down.sql``; statements are
separated by a semicolon at the end of a line. Applying is safe to re-run:
applied versions are skipped. A shipped migration is never edited, only fixed
forward, so a checksum mismatch on an applied version is an error, not a
silent re-apply.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from routerwatch import packagedata
from routerwatch.storage.client import Store
from routerwatch.storage.errors import MigrationError, MigrationsNotFound, QueryError

_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.up\.sql$")

LEDGER_DDL = """
CREATE TABLE IF NOT EXISTS schema_migrations
(
    version    UInt32,
    name       String,
    checksum   String,
    applied_at DateTime64(3, 'UTC') DEFAULT now64(3),
    is_applied UInt8
)
ENGINE = ReplacingMergeTree(applied_at)
ORDER BY version
"""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    up_sql: str
    down_sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.up_sql.encode()).hexdigest()


def default_sql_dir() -> Path:
    """The ``sql/`` shipped in the package (a wheel), or the source tree's (a checkout, ``pip install -e``)."""
    return packagedata.sql_dir()


def load(directory: Path) -> list[Migration]:
    """All migrations in ``directory``, ordered.

    Raises :class:`MigrationsNotFound` (a configuration error) when there are none: a store
    migrated from an empty folder would report a current schema and have no tables; and
    :class:`MigrationError` when one lacks its down file.
    """
    if not any(directory.glob("*.up.sql")):
        state = "has no NNNN_name.up.sql files" if directory.is_dir() else "does not exist"
        raise MigrationsNotFound(
            f"no migrations found: {directory} {state}; set ROUTERWATCH_SQL_DIR to the folder holding "
            "migrations/ (the repository's sql/), or reinstall routerwatch from a wheel that ships them"
        )
    found = []
    for path in sorted(directory.glob("*.up.sql")):
        match = _FILE.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: migration files are named NNNN_name.up.sql")
        down = path.with_name(path.name.replace(".up.sql", ".down.sql"))
        if not down.exists():
            raise MigrationError(f"{path.name}: missing its down migration {down.name}")
        found.append(Migration(int(match[1]), match[2], path.read_text(), down.read_text()))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"duplicate migration versions in {directory}")
    return found


def split_statements(sql: str) -> list[str]:
    """Split on ``;`` at line end, dropping comment-only chunks."""
    statements = []
    for chunk in re.split(r";\s*$", sql, flags=re.MULTILINE):
        body = "\n".join(line for line in chunk.splitlines() if not line.strip().startswith("--")).strip()
        if body:
            statements.append(chunk.strip())
    return statements


def applied(store: Store) -> dict[int, str]:
    """Applied version -> checksum."""
    store.command(LEDGER_DDL)
    result = store.query("SELECT version, checksum FROM schema_migrations FINAL WHERE is_applied = 1")
    return {int(v): c for v, c in result.rows}


def migrate_up(store: Store, directory: Path, target: int | None = None) -> list[Migration]:
    """Apply every pending migration up to ``target`` (all when None). Returns those applied."""
    done = applied(store)
    ran = []
    for migration in load(directory):
        if target is not None and migration.version > target:
            break
        if migration.version in done:
            if done[migration.version] != migration.checksum:
                raise MigrationError(
                    f"migration {migration.version:04d}_{migration.name} was edited after it was applied; "
                    "shipped migrations are fixed forward with a new migration"
                )
            continue
        _run(store, migration, migration.up_sql)
        store.insert_columns(
            "schema_migrations",
            {
                "version": [migration.version],
                "name": [migration.name],
                "checksum": [migration.checksum],
                "is_applied": [1],
            },
        )
        ran.append(migration)
    return ran


def migrate_down(store: Store, directory: Path, target: int) -> list[Migration]:
    """Revert applied migrations above ``target``, newest first. Returns those reverted."""
    done = applied(store)
    reverted = []
    for migration in reversed(load(directory)):
        if migration.version <= target or migration.version not in done:
            continue
        _run(store, migration, migration.down_sql)
        store.insert_columns(
            "schema_migrations",
            {"version": [migration.version], "name": [migration.name], "checksum": [""], "is_applied": [0]},
        )
        reverted.append(migration)
    return reverted


def _run(store: Store, migration: Migration, sql: str) -> None:
    for number, statement in enumerate(split_statements(sql), start=1):
        try:
            store.command(statement)
        except QueryError as exc:
            raise MigrationError(
                f"migration {migration.version:04d}_{migration.name}, statement {number}: {exc}"
            ) from exc
