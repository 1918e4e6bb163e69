"""Fixtures of the integration tests that run the real `routerwatch serve`."""

from __future__ import annotations

import pytest
from servicekit import Env, Serve


@pytest.fixture
def env(kafka_bootstrap, names, tmp_path, store_backend) -> Env:
    """A migrated store (embedded per test, or a fresh database on a server) and fresh topics."""
    url = f"chdb://{tmp_path / 'store'}" if store_backend == "chdb" else store_backend
    environment = Env(kafka=kafka_bootstrap, names=names, store_url=url)
    environment.cli("migrate")
    return environment


@pytest.fixture
def serve(env, tmp_path):
    """`routerwatch serve` on that environment, stopped after the test."""
    service = Serve(env, tmp_path / "serve.log").start()
    yield service
    service.stop()
