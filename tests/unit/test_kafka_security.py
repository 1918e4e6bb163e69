"""Kafka security settings -> client arguments, their validation, and the ClickHouse https DSN."""

from __future__ import annotations

import ssl
import subprocess
import sys

import pytest

from routerwatch.config import load_settings
from routerwatch.errors import ConfigError
from routerwatch.kafka_client import (
    client_kwargs,
    faust_credentials,
    sdk_options,
    security_from_environ,
    security_kwargs,
    settings_kwargs,
)
from routerwatch.sdk import RouterWatch, SdkConfig
from routerwatch.storage.dsn import parse_dsn

VAR = "ROUTERWATCH_KAFKA_SECURITY__"


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    import os

    for key in list(os.environ):
        if key.startswith("ROUTERWATCH_"):
            monkeypatch.delenv(key)
    return monkeypatch


@pytest.fixture(scope="module")
def ca_file(tmp_path_factory: pytest.TempPathFactory):
    """A real CA certificate file (the TLS context loads it)."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "unit CA")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def sasl_env(monkeypatch, ca_file, **overrides: str) -> None:
    values = {
        "PROTOCOL": "SASL_SSL",
        "SASL_MECHANISM": "SCRAM-SHA-512",
        "USERNAME": "alice",
        "PASSWORD": "s3cret-pw",
        "CA_FILE": str(ca_file),
        **overrides,
    }
    for key, value in values.items():
        monkeypatch.setenv(VAR + key, value)


def test_plaintext_default_adds_nothing(clean_env) -> None:
    settings = load_settings()
    assert settings.kafka_security.protocol == "PLAINTEXT"
    assert client_kwargs(settings) == {"bootstrap_servers": "127.0.0.1:9092"}
    assert client_kwargs(settings, group_id="g") == {"bootstrap_servers": "127.0.0.1:9092", "group_id": "g"}
    assert faust_credentials(settings) is None
    assert sdk_options(settings) == {"bootstrap_servers": "127.0.0.1:9092"}


def test_sasl_ssl_settings_become_aiokafka_arguments(clean_env, ca_file) -> None:
    sasl_env(clean_env, ca_file)
    clean_env.setenv("ROUTERWATCH_KAFKA_BOOTSTRAP", "kafka-1:9093,kafka-2:9093")
    settings = load_settings()
    kwargs = client_kwargs(settings)
    context = kwargs.pop("ssl_context")
    assert kwargs == {
        "bootstrap_servers": "kafka-1:9093,kafka-2:9093",
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "alice",
        "sasl_plain_password": "s3cret-pw",
    }
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert any(c["subject"] == ((("commonName", "unit CA"),),) for c in context.get_ca_certs())
    # The password stays out of every printable form of the settings.
    assert "s3cret-pw" not in repr(settings) + str(settings.kafka_security) + settings.kafka_security.describe()
    assert settings.kafka_security.describe() == "SASL_SSL SCRAM-SHA-512 user alice"


def test_faust_gets_the_same_credentials(clean_env, ca_file) -> None:
    import faust

    sasl_env(clean_env, ca_file, SASL_MECHANISM="PLAIN")
    credentials = faust_credentials(load_settings())
    assert isinstance(credentials, faust.SASLCredentials)
    assert (credentials.username, credentials.password) == ("alice", "s3cret-pw")
    assert credentials.mechanism.value == "PLAIN" and credentials.protocol.value == "SASL_SSL"
    assert isinstance(credentials.ssl_context, ssl.SSLContext)

    clean_env.setenv(VAR + "PROTOCOL", "SSL")
    for key in ("SASL_MECHANISM", "USERNAME", "PASSWORD"):
        clean_env.delenv(VAR + key)
    tls_only = faust_credentials(load_settings())
    assert isinstance(tls_only, faust.SSLCredentials) and tls_only.protocol.value == "SSL"


def test_check_hostname_can_be_turned_off_but_verification_stays(clean_env, ca_file) -> None:
    sasl_env(clean_env, ca_file, CHECK_HOSTNAME="false")
    context = settings_kwargs(load_settings().kafka_security)["ssl_context"]
    assert not context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"USERNAME": ""}, f"PROTOCOL=SASL_SSL needs {VAR}USERNAME"),
        ({"PASSWORD": ""}, f"needs {VAR}PASSWORD"),
        ({"SASL_MECHANISM": "GSSAPI"}, f"{VAR}SASL_MECHANISM"),
        ({"PROTOCOL": "TLS"}, f"{VAR}PROTOCOL"),
        ({"PROTOCOL": "SASL_PLAINTEXT"}, f"{VAR}CA_FILE set but {VAR}PROTOCOL=SASL_PLAINTEXT has no TLS"),
        ({"PROTOCOL": "SSL"}, f"set but {VAR}PROTOCOL=SSL has no SASL"),
        ({"CA_FILE": "/nonexistent/ca.pem"}, f"{VAR}CA_FILE: no such file"),
        ({"KEY_FILE": "{ca}"}, f"{VAR}KEY_FILE needs {VAR}CERT_FILE"),
        ({"CHECK_HOSTNAME": "perhaps"}, f"{VAR}CHECK_HOSTNAME"),
    ],
)
def test_bad_combinations_are_config_errors_naming_the_variable(clean_env, ca_file, overrides, message) -> None:
    sasl_env(clean_env, ca_file, **{k: v.format(ca=ca_file) for k, v in overrides.items()})
    with pytest.raises(ConfigError) as raised:
        load_settings()
    assert message in str(raised.value)
    assert "s3cret-pw" not in str(raised.value)


def test_unreadable_ca_file_is_a_config_error(clean_env, tmp_path) -> None:
    bad = tmp_path / "not-a-cert.pem"
    bad.write_text("nothing here")
    sasl_env(clean_env, bad)
    settings = load_settings()  # the file exists: only loading it tells
    with pytest.raises(ConfigError, match="ROUTERWATCH_KAFKA_SECURITY: cannot load the TLS files"):
        client_kwargs(settings)


def test_security_kwargs_rejects_incomplete_sasl() -> None:
    assert security_kwargs("PLAINTEXT") == {}
    assert security_kwargs("sasl_plaintext", sasl_mechanism="plain", username="u", password="p") == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "PLAIN",
        "sasl_plain_username": "u",
        "sasl_plain_password": "p",
    }
    with pytest.raises(ValueError, match="needs a username"):
        security_kwargs("SASL_PLAINTEXT", sasl_mechanism="PLAIN", password="p")
    with pytest.raises(ValueError, match="needs a SASL mechanism"):
        security_kwargs("SASL_SSL", username="u", password="p")
    given = ssl.create_default_context()
    assert security_kwargs("SSL", ssl_context=given) == {"security_protocol": "SSL", "ssl_context": given}


def test_sdk_takes_the_same_options_as_arguments(clean_env, ca_file) -> None:
    sasl_env(clean_env, ca_file, SASL_MECHANISM="SCRAM-SHA-256")
    settings = load_settings()
    config = SdkConfig(**sdk_options(settings), router_id="r")
    assert config.security_protocol == "SASL_SSL" and config.ssl_cafile == str(ca_file)
    assert "s3cret-pw" not in repr(config)
    rw = RouterWatch(config)
    kwargs = dict(rw._kafka_security)
    assert isinstance(kwargs.pop("ssl_context"), ssl.SSLContext)
    assert kwargs == {k: v for k, v in settings_kwargs(settings.kafka_security).items() if k != "ssl_context"}
    rw.close()
    # Plain constructor arguments, as a router passes them.
    direct = RouterWatch(
        bootstrap_servers="kafka:9093", router_id="r", security_protocol="SASL_SSL", sasl_mechanism="PLAIN",
        sasl_plain_username="bob", sasl_plain_password="pw", ssl_cafile=str(ca_file),
    )
    assert direct._kafka_security["sasl_plain_password"] == "pw"
    direct.close()
    with pytest.raises(ValueError, match="needs sasl_mechanism, sasl_plain_username"):
        SdkConfig(router_id="r", security_protocol="SASL_SSL", sasl_plain_password="pw")
    with pytest.raises(ValueError, match="cannot load the TLS files"):
        RouterWatch(router_id="r", security_protocol="SSL", ssl_cafile="/nonexistent/ca.pem")


def test_example_router_reads_only_the_security_variables(ca_file) -> None:
    environ = {f"{VAR}PROTOCOL": "SASL_SSL", f"{VAR}SASL_MECHANISM": "PLAIN", f"{VAR}USERNAME": "u",
               f"{VAR}PASSWORD": "p", f"{VAR}CA_FILE": str(ca_file), "ROUTERWATCH_DATABASE": "-not-checked-"}
    assert security_from_environ(environ).sdk_options()["sasl_plain_username"] == "u"
    with pytest.raises(ConfigError, match=f"{VAR}PROTOCOL"):
        security_from_environ({f"{VAR}PROTOCOL": "bogus"})


def test_the_sdk_still_imports_without_the_service_dependencies() -> None:
    code = (
        "import sys\n"
        "from routerwatch.sdk import RouterWatch\n"
        "RouterWatch(router_id='r', security_protocol='SASL_PLAINTEXT', sasl_mechanism='PLAIN',"
        " sasl_plain_username='u', sasl_plain_password='p').close()\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] in ('faust', 'pydantic_settings', 'clickhouse_connect', 'chdb')]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# -- ClickHouse over https --------------------------------------------------------------------


HTTPS_DSN = "https://rw_writer:p%40ss%2Fw0rd@clickhouse.example.net:8443/?ca_cert=/etc/ssl/ch-ca.pem&verify=true"


def test_https_dsn_keeps_credentials_out_of_every_printable_form(clean_env) -> None:
    target = parse_dsn(HTTPS_DSN)
    assert target.kind == "http" and target.url == HTTPS_DSN
    assert target.describe() == "https://clickhouse.example.net:8443"
    for shown in (target.describe(), repr(target), str(target)):
        assert "p%40ss" not in shown and "rw_writer" not in shown
    clean_env.setenv("ROUTERWATCH_CLICKHOUSE_URL", HTTPS_DSN)
    settings = load_settings()
    assert "p%40ss" not in repr(settings) and settings.store_dsn() == HTTPS_DSN
    assert parse_dsn("https://u:p@clickhouse.example.net").describe() == "https://clickhouse.example.net:8443"


def test_https_dsn_is_what_clickhouse_connect_reads() -> None:
    """The DSN reaches clickhouse-connect whole: TLS, decoded credentials, and the CA option."""
    from clickhouse_connect.driver import _parse_connection_params

    options: dict = {}
    host, user, password, port, database, interface = _parse_connection_params(
        None, None, "", None, None, None, False, HTTPS_DSN, options
    )
    assert (host, user, password, port, interface) == ("clickhouse.example.net", "rw_writer", "p@ss/w0rd", 8443, "https")
    assert database is None  # the routerwatch database is its own setting (ROUTERWATCH_DATABASE)
    assert options == {"ca_cert": "/etc/ssl/ch-ca.pem", "verify": "true"}


@pytest.mark.parametrize(
    ("dsn", "message"),
    [
        ("https://admin:hunter2@/db", "no host in the https:// URL"),
        ("https://admin:hunter2@ch:84x3", "the port of ch is not a number"),
        ("clickhouse://admin:hunter2@ch:9000", "unsupported scheme 'clickhouse'"),
    ],
)
def test_a_bad_dsn_error_never_shows_the_password(dsn: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_dsn(dsn)
    assert message in str(raised.value) and "hunter2" not in str(raised.value)


def test_settings_reject_a_bad_scheme_without_echoing_it(clean_env) -> None:
    clean_env.setenv("ROUTERWATCH_CLICKHOUSE_URL", "clickhouse://admin:hunter2@ch:9000")
    with pytest.raises(ConfigError) as raised:
        load_settings()
    assert "hunter2" not in str(raised.value)
