"""Fixtures of the property tests: the integration tests' store and serve (the same fixtures, not copies)."""

from __future__ import annotations

from integration.conftest import env, serve  # noqa: F401
