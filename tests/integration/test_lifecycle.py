"""Every component's start()/stop() contract: stop is safe without start, safe twice, and start is idempotent."""

from __future__ import annotations

import pytest

from routerwatch.sdk import RouterWatch
from routerwatch.storage.client import Store

pytestmark = pytest.mark.integration


def make_store(tmp_path, kafka, session_chdb_path):
    return Store(f"chdb://{session_chdb_path}", "lifecycle")


def make_sdk(tmp_path, kafka, session_chdb_path):
    return RouterWatch(bootstrap_servers=kafka, router_id="lifecycle", close_timeout_s=10)


@pytest.mark.parametrize("factory", [make_store, make_sdk], ids=["store", "sdk"])
def test_stop_is_safe_without_start_twice_and_after_use(factory, tmp_path, kafka_bootstrap, session_chdb_path):
    component = factory(tmp_path, kafka_bootstrap, session_chdb_path)
    component.stop()
    component.stop()
    component = factory(tmp_path, kafka_bootstrap, session_chdb_path)
    assert component.start() is component
    assert component.start() is component
    component.stop()
    component.stop()
