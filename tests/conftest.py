"""Shared fixtures: a real Kafka broker for the session, and per-test names.

Kafka comes from, in order: ``ROUTERWATCH_TEST_KAFKA_BOOTSTRAP`` (an existing
broker), testcontainers (where a Docker engine answers), or the local broker
started from its Maven Central jars by ``deploy/kafka/start.sh``. There is no
fallback to a fake: when none of these works the session fails.

ClickHouse is the embedded engine (chDB) in the ``routerwatch serve``
subprocess each integration test starts, on a fresh path per test. Only one
process may open a chDB path, and only one path per process, so tests that
use a store in the pytest process itself share one session path with a fresh
database per test.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest
from servicekit import REPO, docker_available, free_port


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> str:
    given = os.environ.get("ROUTERWATCH_TEST_KAFKA_BOOTSTRAP")
    if given:
        yield given
        return
    if docker_available():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer("apache/kafka:4.1.1").with_kraft() as container:
            yield container.get_bootstrap_server()
        return
    data = tmp_path_factory.mktemp("kafka")
    port = free_port()
    env = dict(
        os.environ,
        KAFKA_PORT=str(port),
        KAFKA_CONTROLLER_PORT=str(free_port()),
        KAFKA_DATA_DIR=str(data),
        KAFKA_NUM_PARTITIONS="1",
    )
    started = subprocess.run(
        [str(REPO / "deploy/kafka/start.sh")], env=env, capture_output=True, text=True, timeout=300
    )
    if started.returncode != 0:
        pytest.fail(f"local Kafka broker did not start:\n{started.stderr[-3000:]}")
    try:
        yield started.stdout.strip().splitlines()[-1]
    finally:
        subprocess.run([str(REPO / "deploy/kafka/stop.sh"), "--wipe"], env=env, capture_output=True, timeout=120)


@pytest.fixture
def names() -> dict[str, str]:
    """Fresh topic names, consumer group and database for one test."""
    tag = uuid.uuid4().hex[:10]
    return {
        "decisions": f"t{tag}.decisions",
        "feedback": f"t{tag}.feedback",
        "canary": f"t{tag}.canary",
        "dlq": f"t{tag}.dlq",
        "group": f"g{tag}",
        "database": f"db_{tag}",
    }


@pytest.fixture(scope="session")
def session_chdb_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("chdb-session") / "store"


_DOCKER = docker_available()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Integration tests that take `store_backend` run on the embedded engine always, and on a
    # ClickHouse server too where a Docker engine can start one (the same SQL must run on both).
    if "store_backend" in metafunc.fixturenames:
        metafunc.parametrize("store_backend", ["chdb", "server"] if _DOCKER else ["chdb"], indirect=True)


@pytest.fixture(scope="session")
def clickhouse_server_url() -> str:
    from testcontainers.clickhouse import ClickHouseContainer

    with ClickHouseContainer("clickhouse/clickhouse-server:25.8") as container:
        yield f"http://{container.username}:{container.password}@{container.get_container_host_ip()}:{container.get_exposed_port(8123)}"


@pytest.fixture
def store_backend(request: pytest.FixtureRequest) -> str:
    """"chdb", or the URL of a ClickHouse server (testcontainers)."""
    if request.param == "chdb":
        return "chdb"
    return request.getfixturevalue("clickhouse_server_url")
