"""Kafka over SASL_SSL end to end, on a second real local broker with a SASL_SSL listener.

The module fixture makes a CA and a broker certificate (Python's ``cryptography``), packs the
broker's into a PKCS12 keystore and starts ``deploy/kafka/start.sh`` with a SASL_SSL listener
(users alice and bob, each with PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512). Then: the SDK emits
with PLAIN and with SCRAM-SHA-256; ``routerwatch serve`` ingests those events, dead-letters an
invalid one and holds the canary lease, all over that listener; a wrong password or an
untrusted certificate fails fast with one clear line.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from servicekit import REPO, Env, Serve, free_port

from routerwatch.kafka_client import security_kwargs
from routerwatch.sdk import RouterWatch, SdkConfig
from routerwatch.simulate import Profile, emit

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]

USERS = {"alice": "alice-secret", "bob": "bob-secret"}
STORE_PASSWORD = "broker-store-pw"


def _certificates(directory: Path) -> tuple[Path, Path]:
    """A CA (PEM) and the broker's PKCS12 keystore signed by it, for 127.0.0.1 and localhost."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import pkcs12
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "routerwatch test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_file = directory / "ca.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    encryption = (
        serialization.PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(10_000)
        .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
        .hmac_hash(hashes.SHA256())
        .build(STORE_PASSWORD.encode())
    )
    keystore = directory / "broker.p12"
    keystore.write_bytes(pkcs12.serialize_key_and_certificates(b"broker", key, cert, [ca], encryption))
    return ca_file, keystore


def _other_ca(directory: Path) -> Path:
    other = directory / "other"
    other.mkdir()
    return _certificates(other)[0]


@pytest.fixture(scope="module")
def secure_kafka(tmp_path_factory: pytest.TempPathFactory) -> dict:
    certs = tmp_path_factory.mktemp("kafka-tls")
    ca_file, keystore = _certificates(certs)
    data = tmp_path_factory.mktemp("kafka-sasl")
    sasl_port = free_port()
    env = dict(
        os.environ,
        KAFKA_PORT=str(free_port()),
        KAFKA_CONTROLLER_PORT=str(free_port()),
        KAFKA_DATA_DIR=str(data),
        KAFKA_NUM_PARTITIONS="1",
        KAFKA_START_TIMEOUT="240",
        KAFKA_SASL_SSL_PORT=str(sasl_port),
        KAFKA_SSL_KEYSTORE=str(keystore),
        KAFKA_SSL_KEYSTORE_PASSWORD=STORE_PASSWORD,
        KAFKA_SASL_USERS=" ".join(f"{u}:{p}" for u, p in USERS.items()),
    )
    started = subprocess.run(
        [str(REPO / "deploy/kafka/start.sh")], env=env, capture_output=True, text=True, timeout=360
    )
    if started.returncode != 0:
        pytest.fail(f"SASL_SSL broker did not start:\n{started.stderr[-3000:]}")
    try:
        yield {
            "bootstrap": f"127.0.0.1:{sasl_port}",
            "ca_file": ca_file,
            "other_ca": _other_ca(certs),
            "stderr": started.stderr,
        }
    finally:
        subprocess.run([str(REPO / "deploy/kafka/stop.sh"), "--wipe"], env=env, capture_output=True, timeout=120)


def _security_env(kafka: dict, mechanism: str, user: str, password: str, ca_file: Path | None = None) -> dict[str, str]:
    return {
        "ROUTERWATCH_KAFKA_SECURITY__PROTOCOL": "SASL_SSL",
        "ROUTERWATCH_KAFKA_SECURITY__SASL_MECHANISM": mechanism,
        "ROUTERWATCH_KAFKA_SECURITY__USERNAME": user,
        "ROUTERWATCH_KAFKA_SECURITY__PASSWORD": password,
        "ROUTERWATCH_KAFKA_SECURITY__CA_FILE": str(ca_file or kafka["ca_file"]),
    }


def _sdk(kafka: dict, names: dict, mechanism: str, user: str, password: str, **extra) -> RouterWatch:
    return RouterWatch(
        SdkConfig(
            bootstrap_servers=kafka["bootstrap"],
            security_protocol="SASL_SSL",
            sasl_mechanism=mechanism,
            sasl_plain_username=user,
            sasl_plain_password=password,
            ssl_cafile=str(kafka["ca_file"]),
            router_id="secure-router",
            decisions_topic=names["decisions"],
            feedback_topic=names["feedback"],
            max_queue=50_000,
            **extra,
        )
    ).start()


async def _produce_raw(kafka: dict, topic: str, value: bytes) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        bootstrap_servers=kafka["bootstrap"],
        **security_kwargs(
            "SASL_SSL", sasl_mechanism="SCRAM-SHA-512", username="bob", password=USERS["bob"], ca_file=str(kafka["ca_file"])
        ),
    )
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=b"bad")
    finally:
        await producer.stop()


def _until(predicate, timeout: float, what: str, log=lambda: "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    raise AssertionError(f"{what}: not within {timeout}s\n{log()}")


def test_sdk_serve_dead_letters_and_lease_over_sasl_ssl(secure_kafka, names, tmp_path):
    canaries = tmp_path / "canaries.yml"
    canaries.write_text(
        "version: t1\nrouter_id: secure-router\ncanaries:\n"
        "  - id: ping\n"
        "    request: {model: auto, messages: [{role: user, content: ping}]}\n"
        "    expected_tier: small\n"
        "    check: {kind: regex, pattern: '.'}\n"
        "    schedule: {every_seconds: 2, jitter_seconds: 0.2, timeout_seconds: 2}\n"
        "    labels: {category: ping, side: cheap}\n"
    )
    extra = {
        **_security_env(secure_kafka, "SCRAM-SHA-256", "alice", USERS["alice"]),
        # The router does not exist: every probe is a no-answer result, emitted and stored all the same.
        "ROUTERWATCH_CANARY__FILES": json.dumps([str(canaries)]),
        "ROUTERWATCH_CANARY__ROUTER_URL": f"http://127.0.0.1:{free_port()}/v1/chat/completions",
        "ROUTERWATCH_CANARY__LEASE_TOPIC": f"{names['decisions']}.lease",
        "ROUTERWATCH_CANARY__LEASE_GROUP": f"{names['group']}-lease",
        "ROUTERWATCH_CANARY__LEASE_SESSION_TIMEOUT_S": "6",
        "ROUTERWATCH_CANARY__STATE_FILE": str(tmp_path / "canary-state.json"),
        "ROUTERWATCH_SCHEDULER__ENABLED": "false",
    }
    env = Env(kafka=secure_kafka["bootstrap"], names=names, store_url=f"chdb://{tmp_path / 'store'}", extra=extra)
    env.cli("migrate")
    serve = Serve(env, tmp_path / "serve.log").start(timeout=180)
    try:
        assert "SASL_SSL SCRAM-SHA-256 user alice" in serve.log_text()
        summaries = []
        for mechanism, user in (("PLAIN", "bob"), ("SCRAM-SHA-256", "alice")):
            rw = _sdk(secure_kafka, names, mechanism, user, USERS[user], close_timeout_s=60)
            summaries.append(emit(rw, Profile(router_id="secure-router"), 40, seed=len(summaries) + 1))
            stats = rw.close()
            assert stats["sent"] >= 40 and stats["dropped"] == 0, (mechanism, stats)
        serve.wait_for("SELECT count() FROM decisions", 80, timeout=120)
        asyncio.run(_produce_raw(secure_kafka, names["decisions"], b'{"not": "a routing decision"}'))
        # The dead letter went out through faust's producer over SASL_SSL; the CLI reads it back the same way.
        _until(lambda: env.cli("dlq", "--count").stdout.strip() == "1", 90, "dead letter on the DLQ topic", serve.log)
        listed = env.cli("dlq").stdout
        assert names["decisions"] in listed
        # The canary prober holds the lease and its SDK emits results over the same listener.
        _until(lambda: "canary prober lease acquired" in serve.log_text(), 90, "lease", serve.log)
        serve.wait_for("SELECT count() > 0 FROM canary_results", 1, timeout=90)
        assert "ingest caught up" in env.cli("wait", "--timeout", "60").stdout
    finally:
        assert serve.stop() is not None


@pytest.mark.parametrize("command", [["serve"], ["wait", "--timeout", "30"], ["dlq", "--count"]])
def test_a_wrong_password_fails_fast_with_one_clear_line(secure_kafka, names, tmp_path, command):
    env = Env(
        kafka=secure_kafka["bootstrap"], names=names, store_url=f"chdb://{tmp_path / 'store'}",
        extra=_security_env(secure_kafka, "SCRAM-SHA-256", "alice", "not-the-password"),
    )
    if command == ["serve"]:
        env.cli("migrate")
    started = time.monotonic()
    done = env.cli(*command, check=False, timeout=120)
    assert done.returncode == 2, (done.returncode, done.stderr[-3000:])
    assert time.monotonic() - started < 60, "a refused login is not retried until some timeout"
    expected = f"Kafka authentication failed for user 'alice' (SCRAM-SHA-256) at broker {secure_kafka['bootstrap']}"
    assert expected in done.stderr, done.stderr[-3000:]
    if command != ["serve"]:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert lines == [line for line in lines if expected in line], done.stderr  # one line, nothing else
    assert "not-the-password" not in done.stderr + done.stdout


def test_an_untrusted_broker_certificate_is_named(secure_kafka, names, tmp_path):
    env = Env(
        kafka=secure_kafka["bootstrap"], names=names, store_url=f"chdb://{tmp_path / 'store'}",
        extra=_security_env(secure_kafka, "PLAIN", "bob", USERS["bob"], ca_file=secure_kafka["other_ca"]),
    )
    done = env.cli("dlq", "--count", check=False, timeout=120)
    assert done.returncode == 2, done.stderr[-3000:]
    assert f"TLS handshake with Kafka broker {secure_kafka['bootstrap']} failed: certificate verify failed" in done.stderr


def test_the_sdk_keeps_events_and_logs_a_refused_login(secure_kafka, names, caplog):
    caplog.set_level("ERROR", logger="routerwatch.sdk")
    rw = _sdk(secure_kafka, names, "PLAIN", "bob", "wrong", close_timeout_s=0, drop_log_interval_s=0.5)
    with rw.decision(category="billing", tenant="t1") as d:
        d.attempt("small", tier_rank=0, model="m", provider="p").accept(input_tokens=1, output_tokens=1, cost_usd=0.0)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and "authentication failed" not in caplog.text:
        time.sleep(0.2)
    stats = rw.close()
    assert "Kafka authentication failed for user 'bob' (PLAIN)" in caplog.text, caplog.text
    assert stats["sent"] == 0 and stats.get("dropped_rejected", 0) == 0


def test_the_lease_over_sasl_ssl(secure_kafka, names):
    from routerwatch.scheduler.lease import KafkaLease

    security = security_kwargs(
        "SASL_SSL", sasl_mechanism="SCRAM-SHA-512", username="alice", password=USERS["alice"],
        ca_file=str(secure_kafka["ca_file"]),
    )

    async def scenario() -> None:
        from aiokafka.admin import AIOKafkaAdminClient, NewTopic

        topic = f"{names['decisions']}.lease"
        admin = AIOKafkaAdminClient(bootstrap_servers=secure_kafka["bootstrap"], **security)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
        finally:
            await admin.close()
        lease = KafkaLease(secure_kafka["bootstrap"], topic, names["group"], session_timeout_s=6, security=security)
        await lease.start()
        try:
            assert await lease.wait_held(60), "the only member never got the lease over SASL_SSL"
        finally:
            await lease.stop()

    asyncio.run(scenario())
