"""Shared fixtures of the unit tests: no network, no broker, no store."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from routerwatch.sdk import RouterWatch

# Nothing listens on port 1: the sender never connects, so nothing is ever sent.
UNREACHABLE = "127.0.0.1:1"


@pytest.fixture
def make_rw() -> Iterator[Callable[..., RouterWatch]]:
    """Build RouterWatch clients aimed at an unreachable broker; close them all at teardown."""
    clients: list[RouterWatch] = []

    def factory(**settings: Any) -> RouterWatch:
        settings.setdefault("bootstrap_servers", UNREACHABLE)
        settings.setdefault("router_id", "r")
        rw = RouterWatch(**settings)
        clients.append(rw)
        return rw

    yield factory
    for rw in clients:
        rw.close(timeout=0)
