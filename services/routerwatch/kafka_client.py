"""Kafka connection security for every client routerwatch creates.

One place turns the security options (TLS, SASL PLAIN / SCRAM) into the
keyword arguments of aiokafka's producer, consumer and admin client
(:func:`security_kwargs`), and into faust's ``broker_credentials``
(:func:`faust_credentials`). The SDK passes its constructor arguments through
:func:`security_kwargs` too, so this module imports nothing beyond the
standard library at import time: router processes load it without the
service's dependencies.

A broker that refuses the credentials is not "unavailable": aiokafka only
reports ``Unable to bootstrap from [...]`` for it, so :func:`explain_failure`
connects once more to find out why and :class:`KafkaAuthError` carries a
message that names the user, the mechanism and the broker.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from routerwatch.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from routerwatch.config import KafkaSecurity, Settings

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


class KafkaAuthError(ConfigError):
    """The broker refused the SASL credentials or the TLS handshake failed: retrying cannot help."""


def security_kwargs(
    protocol: str = "PLAINTEXT",
    *,
    sasl_mechanism: str | None = None,
    username: str | None = None,
    password: str | None = None,
    ca_file: str | None = None,
    cert_file: str | None = None,
    key_file: str | None = None,
    key_password: str | None = None,
    check_hostname: bool = True,
    ssl_context: ssl.SSLContext | None = None,
) -> dict[str, Any]:
    """aiokafka keyword arguments (producer, consumer, admin client) for one security setup.

    PLAINTEXT gives ``{}`` (aiokafka's defaults), so a plaintext client is built
    exactly as before. ``ssl_context`` wins over the file options; without either,
    TLS trusts the system's certificate authorities. Raises ``ValueError`` for an
    incomplete combination (SASL without mechanism, user or password).
    """
    protocol = (protocol or "PLAINTEXT").upper()
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown Kafka security protocol {protocol!r}; one of {', '.join(PROTOCOLS)}")
    if protocol == "PLAINTEXT":
        return {}
    kwargs: dict[str, Any] = {"security_protocol": protocol}
    if protocol.startswith("SASL_"):
        mechanism = (sasl_mechanism or "").upper()
        if mechanism not in SASL_MECHANISMS:
            raise ValueError(f"{protocol} needs a SASL mechanism, one of {', '.join(SASL_MECHANISMS)}")
        if not username:
            raise ValueError(f"{protocol} needs a username")
        if password is None:
            raise ValueError(f"{protocol} needs a password")
        # aiokafka takes the SCRAM credentials in its sasl_plain_* arguments too.
        kwargs.update(sasl_mechanism=mechanism, sasl_plain_username=username, sasl_plain_password=password)
    if protocol.endswith("SSL"):
        kwargs["ssl_context"] = ssl_context or make_ssl_context(
            ca_file=ca_file, cert_file=cert_file, key_file=key_file, key_password=key_password,
            check_hostname=check_hostname,
        )
    return kwargs


def make_ssl_context(
    *,
    ca_file: str | None = None,
    cert_file: str | None = None,
    key_file: str | None = None,
    key_password: str | None = None,
    check_hostname: bool = True,
) -> ssl.SSLContext:
    """A client TLS context: verifies the broker against ``ca_file`` (or the system CAs); optional client cert."""
    from aiokafka.helpers import create_ssl_context

    if key_file and not cert_file:
        raise ValueError("a client key file needs its certificate file")
    try:
        context = create_ssl_context(cafile=ca_file, certfile=cert_file, keyfile=key_file, password=key_password)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"cannot load the TLS files: {exc}") from exc
    # The broker's certificate is always verified; only the name check may be turned off
    # (a certificate issued for another name, e.g. behind a port forward).
    context.check_hostname = check_hostname
    return context


def settings_kwargs(security: KafkaSecurity) -> dict[str, Any]:
    """:func:`security_kwargs` for the service's ``ROUTERWATCH_KAFKA_SECURITY__*`` settings."""
    try:
        return security_kwargs(**security.security_options())
    except ValueError as exc:
        raise ConfigError(f"ROUTERWATCH_KAFKA_SECURITY: {exc}") from exc


def client_kwargs(settings: Settings, **extra: Any) -> dict[str, Any]:
    """Keyword arguments of an aiokafka client of the service: bootstrap servers, security, ``extra``."""
    return {"bootstrap_servers": settings.kafka_bootstrap, **settings_kwargs(settings.kafka_security), **extra}


def sdk_options(settings: Settings) -> dict[str, Any]:
    """The SDK's (``SdkConfig``) connection arguments for the service's settings."""
    return {"bootstrap_servers": settings.kafka_bootstrap, **settings.kafka_security.sdk_options()}


def faust_credentials(settings: Settings) -> Any:
    """faust's ``broker_credentials`` for the settings (``None``: plaintext)."""
    import faust

    kwargs = settings_kwargs(settings.kafka_security)
    protocol = kwargs.get("security_protocol", "PLAINTEXT")
    if protocol == "PLAINTEXT":
        return None
    if protocol == "SSL":
        return faust.SSLCredentials(kwargs["ssl_context"])
    # SASLCredentials picks SASL_SSL when given a context, SASL_PLAINTEXT otherwise.
    return faust.SASLCredentials(
        username=kwargs["sasl_plain_username"],
        password=kwargs["sasl_plain_password"],
        mechanism=kwargs["sasl_mechanism"],
        ssl_context=kwargs.get("ssl_context"),
    )


def _first_broker(bootstrap: str) -> tuple[str, int]:
    first = bootstrap.split(",")[0].strip()
    host, _, port = first.rpartition(":")
    if not host or not port.isdigit():
        return first, 9092
    return host.strip("[]"), int(port)


async def explain_failure(
    bootstrap: str, kwargs: Mapping[str, Any], timeout_s: float = 10.0, *, settings_hint: bool = True
) -> str | None:
    """Why a client with these arguments cannot connect, when the reason is its credentials or TLS.

    Connects once to the first bootstrap broker the way aiokafka does. Returns a
    one-line message for a refused login or a failed TLS handshake, ``None`` for
    anything else (refused connection, timeout: the broker is down, which is retryable).
    ``settings_hint``: end the message with the ``ROUTERWATCH_KAFKA_SECURITY__*`` variables to check.
    """
    from aiokafka import errors
    from aiokafka.conn import create_conn

    protocol = kwargs.get("security_protocol", "PLAINTEXT")
    if protocol == "PLAINTEXT":
        return None
    host, port = _first_broker(bootstrap)
    broker = f"{host}:{port}"
    user = kwargs.get("sasl_plain_username")
    mechanism = kwargs.get("sasl_mechanism")
    try:
        conn = await create_conn(
            host, port,
            request_timeout_ms=int(timeout_s * 1000),
            security_protocol=protocol,
            ssl_context=kwargs.get("ssl_context"),
            sasl_mechanism=mechanism,
            sasl_plain_username=user,
            sasl_plain_password=kwargs.get("sasl_plain_password"),
        )
    except (errors.SaslAuthenticationFailed, errors.AuthenticationFailedError) as exc:
        detail = str(exc).strip() or type(exc).__name__
        hint = " (check ROUTERWATCH_KAFKA_SECURITY__USERNAME / __PASSWORD / __SASL_MECHANISM)" if settings_hint else ""
        return f"Kafka authentication failed for user {user!r} ({mechanism}) at broker {broker}: {detail}{hint}"
    except errors.UnsupportedSaslMechanismError as exc:
        return f"Kafka broker {broker} does not accept SASL mechanism {mechanism}: {exc}"
    except ssl.SSLCertVerificationError as exc:
        hint = " (check ROUTERWATCH_KAFKA_SECURITY__CA_FILE / __CHECK_HOSTNAME)" if settings_hint else ""
        return f"TLS handshake with Kafka broker {broker} failed: certificate verify failed ({exc.verify_message or exc}){hint}"
    except ssl.SSLError as exc:
        return f"TLS handshake with Kafka broker {broker} failed: {exc} (is it a {protocol} listener?)"
    except Exception:  # noqa: BLE001 - anything else: not a credentials problem
        return None
    conn.close()
    return None


async def start_client(client: Any, bootstrap: str, kwargs: Mapping[str, Any]) -> None:
    """``await client.start()``, turning a refused login or TLS failure into :class:`KafkaAuthError`."""
    from aiokafka.errors import KafkaConnectionError

    held = _HeldRecords() if kwargs.get("security_protocol", "PLAINTEXT") != "PLAINTEXT" else None
    try:
        if held is not None:
            # aiokafka logs each refused bootstrap at ERROR; held back until the cause is known,
            # so that a refused login reads as the one clear line of KafkaAuthError.
            logging.getLogger("aiokafka").addFilter(held)
        try:
            await client.start()
        finally:
            if held is not None:
                logging.getLogger("aiokafka").removeFilter(held)
    except KafkaConnectionError:
        reason = await explain_failure(bootstrap, kwargs)
        if reason is not None:
            await _close(client)
            raise KafkaAuthError(reason) from None
        if held is not None:
            held.replay()
        await _close(client)  # a client that never started still holds its connections: no "Unclosed" warning
        raise
    if held is not None:
        held.replay()


class _CoordinatorRetries(logging.Filter):
    """aiokafka's consumer-group retries, at INFO instead of ERROR and WARNING.

    On a fresh broker the group coordinator is not elected yet when serve starts
    (``GroupCoordinatorNotAvailableError``, then a run of "Marking the coordinator dead"):
    aiokafka retries until it is, and nothing is wrong. Those lines stay in the log, at INFO;
    a coordinator that stays away shows where on-call looks, ``/health`` and
    ``routerwatch_ingest_stalled_seconds``. A non-retriable group error keeps its level.
    """

    LOGGER = "aiokafka.consumer.group_coordinator"

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.INFO and self.retry_chatter(record):
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True

    @staticmethod
    def retry_chatter(record: logging.LogRecord) -> bool:
        message = str(record.msg)
        if message.startswith("Marking the coordinator dead"):
            return True
        if message.startswith("Group Coordinator Request failed") and record.args:
            args = record.args if isinstance(record.args, tuple) else (record.args,)
            return bool(getattr(args[0], "retriable", False))
        return False


def quiet_coordinator_retries() -> None:
    """Log aiokafka's retriable consumer-group chatter at INFO (see :class:`_CoordinatorRetries`). Idempotent."""
    logger = logging.getLogger(_CoordinatorRetries.LOGGER)
    if not any(isinstance(f, _CoordinatorRetries) for f in logger.filters):
        logger.addFilter(_CoordinatorRetries())


class _HeldRecords(logging.Filter):
    """A logger filter that keeps the records back, to be replayed (or not) later."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def filter(self, record: logging.LogRecord) -> bool:
        self.records.append(record)
        return False

    def replay(self) -> None:
        for record in self.records:
            logging.getLogger(record.name).handle(record)
        self.records.clear()


async def _close(client: Any) -> None:
    closer = getattr(client, "close", None) or getattr(client, "stop")
    try:
        await closer()
    except Exception:  # noqa: BLE001 - it never started
        pass


def security_from_environ(environ: Mapping[str, str]) -> KafkaSecurity:
    """Only the ``ROUTERWATCH_KAFKA_SECURITY__*`` variables of ``environ``, for tools without full settings.

    The example router reads its few settings straight from the environment; this gives it the
    same Kafka security setup as ``serve``. Raises :class:`ConfigError` naming the variable.
    """
    from pydantic import ValidationError

    from routerwatch.config import ENV_PREFIX, KafkaSecurity

    prefix = ENV_PREFIX + "KAFKA_SECURITY__"
    values = {k[len(prefix):].lower(): v for k, v in environ.items() if k.startswith(prefix)}
    try:
        return KafkaSecurity.model_validate(values)
    except ValidationError as exc:
        problems = [
            f"{prefix}{'__'.join(str(p) for p in item['loc']).upper() or '*'}: {item['msg']}"
            for item in exc.errors(include_url=False)
        ]
        raise ConfigError("invalid Kafka security settings: " + "; ".join(problems)) from exc
