"""Fixtures of the fault suite: the integration tests' migrated store and fresh topics (``env``).

Each case starts and stops its own `routerwatch serve` (servicekit.Serve), since the faults
kill, stop and restart it. ``ROUTERWATCH_FAULTS=long`` (``make faults``) scales every case up.
"""

from __future__ import annotations

from integration.conftest import env  # noqa: F401  (the same fixture, not a copy)
