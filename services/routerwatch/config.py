"""Service settings: one ``ROUTERWATCH_`` prefix, nested sections with ``__``.

Examples: ``ROUTERWATCH_CLICKHOUSE_URL=chdb:///var/lib/routerwatch/store``,
``ROUTERWATCH_KAFKA_BOOTSTRAP=kafka:9092``, ``ROUTERWATCH_INGEST__BATCH_SIZE=20000``,
``ROUTERWATCH_HTTP__PORT=9464``.

Settings are built once in ``main()`` (see :func:`load_settings`) and passed
down; nothing else reads the environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from routerwatch.alerting.runbooks import DEFAULT_RUNBOOK_BASE_URL, check_runbook_base_url
from routerwatch.errors import ConfigError
from routerwatch.sdk.client import DECISIONS_TOPIC, FEEDBACK_TOPIC, CANARY_TOPIC

ENV_PREFIX = "ROUTERWATCH_"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TopicSettings(_Section):
    decisions: str = Field(
        default=DECISIONS_TOPIC,
        description="RoutingDecision events: the routers' SDK and the OTLP receiver produce them, ingest consumes them. "
        "Renamed here, rename it in the routers' SDK config (decisions_topic) too.",
    )
    feedback: str = Field(
        default=FEEDBACK_TOPIC, description="QualityFeedback events (the SDK's feedback_topic), consumed by ingest."
    )
    canary: str = Field(
        default=CANARY_TOPIC, description="CanaryResult events: the canary prober's results (the SDK's canary_topic), consumed by ingest."
    )
    dlq: str = Field(
        default="routerwatch.decisions.dlq",
        description="Dead-letter topic: messages ingest or the OTLP receiver cannot store, with the reason in their "
        "headers; `routerwatch dlq` lists them.",
    )
    partitions: int = Field(
        default=4, ge=1,
        description="Partitions of each topic `serve` creates at start when it does not exist yet (existing topics keep "
        "theirs); at most this many ingest instances share the work.",
    )


class KafkaSecurity(_Section):
    """TLS and SASL of every Kafka client of the service (ingest, dead letters, lease, CLI, canary SDK).

    ``ROUTERWATCH_KAFKA_SECURITY__PROTOCOL=SASL_SSL`` with ``__SASL_MECHANISM``, ``__USERNAME``,
    ``__PASSWORD`` and ``__CA_FILE`` is the usual production setup; see routerwatch.kafka_client.
    """

    protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT",
        description="How every Kafka client of routerwatch connects: SSL is TLS without SASL, SASL_SSL a SASL login "
        "over TLS (the usual production setup), SASL_PLAINTEXT a SASL login without TLS.",
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        default=None, description="SASL mechanism; required with SASL_PLAINTEXT / SASL_SSL, refused without SASL."
    )
    username: str | None = Field(default=None, description="SASL user; required with SASL_PLAINTEXT / SASL_SSL.")
    password: SecretStr | None = Field(
        default=None, description="SASL password; required with SASL_PLAINTEXT / SASL_SSL; never logged."
    )
    ca_file: Path | None = Field(
        default=None,
        description="PEM CA bundle the broker's certificate is checked against; unset: the system's CAs. "
        "Only with SSL / SASL_SSL.",
    )
    cert_file: Path | None = Field(
        default=None, description="PEM client certificate, for brokers that require mutual TLS (SSL / SASL_SSL)."
    )
    key_file: Path | None = Field(default=None, description="PEM private key of cert_file (needs cert_file).")
    key_password: SecretStr | None = Field(default=None, description="Password of an encrypted key_file; never logged.")
    check_hostname: bool = Field(
        default=True,
        description="Check the broker's name against its certificate. false skips only the name check: the "
        "certificate is always verified.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> KafkaSecurity:
        var = ENV_PREFIX + "KAFKA_SECURITY__"
        sasl = self.protocol.startswith("SASL_")
        tls = self.protocol.endswith("SSL")
        if sasl:
            missing = [
                name for name, value in (("SASL_MECHANISM", self.sasl_mechanism), ("USERNAME", self.username), ("PASSWORD", self.password))
                if not value
            ]
            if missing:
                raise ValueError(f"{var}PROTOCOL={self.protocol} needs " + ", ".join(var + m for m in missing))
        else:
            given = [n for n, v in (("SASL_MECHANISM", self.sasl_mechanism), ("USERNAME", self.username), ("PASSWORD", self.password)) if v]
            if given:
                raise ValueError(f"{', '.join(var + g for g in given)} set but {var}PROTOCOL={self.protocol} has no SASL")
        files = (("CA_FILE", self.ca_file), ("CERT_FILE", self.cert_file), ("KEY_FILE", self.key_file))
        if not tls:
            given = [n for n, v in files if v]
            if given:
                raise ValueError(f"{', '.join(var + g for g in given)} set but {var}PROTOCOL={self.protocol} has no TLS")
        for name, path in files:
            if path is not None and not path.is_file():
                raise ValueError(f"{var}{name}: no such file {str(path)!r}")
        if self.key_file and not self.cert_file:
            raise ValueError(f"{var}KEY_FILE needs {var}CERT_FILE")
        return self

    def security_options(self) -> dict[str, Any]:
        """Arguments of :func:`routerwatch.kafka_client.security_kwargs` (secrets in clear: never log them)."""
        return {
            "protocol": self.protocol,
            "sasl_mechanism": self.sasl_mechanism,
            "username": self.username,
            "password": self.password.get_secret_value() if self.password else None,
            "ca_file": str(self.ca_file) if self.ca_file else None,
            "cert_file": str(self.cert_file) if self.cert_file else None,
            "key_file": str(self.key_file) if self.key_file else None,
            "key_password": self.key_password.get_secret_value() if self.key_password else None,
            "check_hostname": self.check_hostname,
        }

    def sdk_options(self) -> dict[str, Any]:
        """The same setup as the SDK's ``SdkConfig`` arguments (empty for PLAINTEXT)."""
        if self.protocol == "PLAINTEXT":
            return {}
        options: dict[str, Any] = {"security_protocol": self.protocol, "ssl_check_hostname": self.check_hostname}
        for key, value in (
            ("sasl_mechanism", self.sasl_mechanism),
            ("sasl_plain_username", self.username),
            ("sasl_plain_password", self.password),
            ("ssl_cafile", self.ca_file),
            ("ssl_certfile", self.cert_file),
            ("ssl_keyfile", self.key_file),
            ("ssl_password", self.key_password),
        ):
            if value is not None:
                options[key] = str(value) if isinstance(value, Path) else value
        return options

    def describe(self) -> str:
        """The setup without secrets, for log lines: ``SASL_SSL SCRAM-SHA-256 user alice``."""
        if self.protocol.startswith("SASL_"):
            return f"{self.protocol} {self.sasl_mechanism} user {self.username}"
        return self.protocol


class IngestSettings(_Section):
    app_id: str = Field(default="routerwatch-ingest", description="Kafka consumer group of the ingest service.")
    # 25,000: the embedded engine's fixed cost per insert (two tables and their rollup views) and
    # its merges of small parts dominate smaller batches (bench/RESULTS.md: 11.5k -> 18.3k events/s
    # per core from 5,000). batch_seconds bounds freshness below batch_size / batch_seconds events/s.
    batch_size: int = Field(default=25_000, ge=1, description="Events per ClickHouse insert, at most.")
    batch_seconds: float = Field(default=1.0, gt=0, description="Longest wait before a partial batch is stored.")
    retry_initial_s: float = Field(
        default=0.5, gt=0,
        description="First wait before retrying when ClickHouse or Kafka is unavailable (an insert, a dead letter, "
        "the OTLP receiver's produce, a restarted consumer); doubled after each failure up to retry_max_s.",
    )
    retry_max_s: float = Field(
        default=30.0, gt=0, description="Longest wait between retries while ClickHouse or Kafka stays unavailable."
    )
    # A redelivered or replayed message carries its original occurred_at and is recognised at any
    # age; this window is only for a router recording the same event_id again at a new time. The
    # dedup lookup reads the decisions within it of each batch's events (ingest/dedup.py), so its
    # cost grows with event rate x window: at 10k events/s, 300 s made serve fall ~12 s behind
    # (freshness p50) where 0 s kept it at 1.9 s (bench/perf/soak.py CHANGES).
    reemission_window_s: float = Field(
        default=60.0, ge=0,
        description="How far apart in occurred_at two events with one event_id are still recognised as one.",
    )
    session_timeout_s: float = Field(
        default=30.0, ge=1,
        description="Kafka consumer session timeout of ingest: an instance silent this long loses its partitions to "
        "the others (heartbeats every min(3 s, timeout / 3)). Must lie within the broker's group session limits.",
    )
    dlq_redact: list[str] = Field(
        default_factory=list,
        description="Dotted JSON paths blanked out of dead-lettered payloads (`*` for every element or key; "
        "the path `*` alone keeps no payload); see routerwatch.ingest.redact.",
    )
    # A large batch takes seconds to store; a paused or wedged ingest, minutes.
    stall_limit_s: float = Field(
        default=60.0, gt=0,
        description="/health answers 503 when no batch was committed for this long while messages wait.",
    )


class QuerySettings(_Section):
    """Limits of the read-only SQL surface (/query, `routerwatch sql`, `report`), applied by the engine
    to every such query; none can be turned off (0 is not accepted)."""

    # The store serialises its calls, so ingest waits at most this long behind a read query.
    max_execution_time_s: float = Field(
        default=10.0, gt=0, description="A read query running longer is stopped with an error."
    )
    max_memory_bytes: int = Field(default=1 << 30, ge=1 << 20, description="Memory one read query may use.")
    max_result_rows: int = Field(
        default=100_000, ge=1, description="A result with more rows is refused with an error (never truncated)."
    )
    max_result_bytes: int = Field(
        default=64 << 20, ge=1 << 10, description="A result larger than this (uncompressed) is refused with an error."
    )


class MetricsSettings(_Section):
    max_categories: int = Field(
        default=50, ge=1, description="Distinct category label values per process; later ones export as 'other'."
    )


class SchedulerSettings(_Section):
    """The drift detectors' schedule, budgets and where their alerts go."""

    enabled: bool = Field(
        default=True,
        description="Run the drift detectors inside `serve`; false: serve only ingests and raises no drift alerts.",
    )
    interval_s: float = Field(default=60.0, gt=0, description="How often the detectors run.")
    lookback_minutes: int = Field(
        default=360, ge=10, description="History each run re-reads: CUSUMs restart from zero this far back."
    )
    # A week: with a day, the baseline rate's own estimation error made the CUSUMs page ~1.6x more
    # often than their budget in the replay benchmark (bench/RESULTS-drift.md); a week brings it to ~1.1x.
    baseline_window_hours: float = Field(default=168.0, gt=0, description="History a baseline is learned from.")
    auto_baseline: bool = Field(default=True, description="Learn a first baseline for a series once it has enough history.")
    baseline_min_trials: int = Field(
        default=1000, ge=1,
        description="Trials a series needs (over at least an hour of its history) before a baseline is learned for "
        "it, automatically or by `routerwatch baseline learn`.",
    )
    false_pages_per_month: float = Field(
        default=1.0, gt=0, description=(
            "False pages a month the drift detectors may raise in all, shared by every watched series "
            "(pages read it as '1 false page per month across the 400 watched series')."
        ),
    )
    escalation_delta: float = Field(default=0.03, gt=0, lt=1, description="Escalation-rate shift to detect (absolute).")
    failure_delta: float = Field(
        default=0.02, gt=0, lt=1,
        description="Failure-mode rate rise to detect (absolute, per router, tier and mode); raises a warning, not a page.",
    )
    min_volume: float = Field(default=5.0, ge=0, description="Baseline trials/minute below which a series is not judged.")
    hourly_lookback_hours: float = Field(
        default=168.0, gt=0, le=24 * 90,
        description="Complete hours the hourly CUSUM of a wobbly series folds each run (a slow drift needs many).",
    )
    hour_sd_prior: float = Field(
        default=0.1, ge=0, le=2,
        description="Hour-level wobble (logit sd) assumed for a series whose baseline is too short to measure its own.",
    )
    kept_p95_ms: float = Field(default=5000.0, gt=0, description="Latency SLO target of kept requests (p95).")
    escalated_p95_ms: float = Field(default=13000.0, gt=0, description="Latency SLO target of escalated requests (p95).")
    alertmanager_urls: list[str] = Field(
        default_factory=list,
        description="Alertmanager base URLs (JSON list, e.g. [\"http://alertmanager:9093\"]; basic auth as "
        "http://user:password@host); empty: alerts are only listed (`routerwatch alerts`, /alerts).",
    )
    state_file: Path = Field(default=Path(".run/alerting-state.json"), description="Firing set, kept across restarts.")
    design_cache_file: Path = Field(
        default=Path(".run/tolerance-designs.json"),
        description="Computed CUSUM designs, kept across restarts (a cold design costs 0.1-1 s of CPU per series).",
    )
    runbook_base_url: str = Field(
        default=DEFAULT_RUNBOOK_BASE_URL,
        description="Absolute http(s) URL of the runbooks page (alerts/runbooks/README.md where you publish it); each "
        "alert's runbook_url is this plus #<alertname in lower case>. Default: that page in the project's repository. "
        "Deploy the rule file with the same base: python -m routerwatch.alerting.runbooks --base-url URL.",
    )

    @field_validator("runbook_base_url")
    @classmethod
    def _absolute_runbook_base(cls, value: str) -> str:
        return check_runbook_base_url(value)


class CanarySettings(_Section):
    """Canary probes: which sets to fire, at which router, and the N-of-M alert windows."""

    files: list[Path] = Field(
        default_factory=list, description="JSON list of canary set files (YAML); empty: no probes are fired."
    )
    router_url: str | None = Field(
        default=None, description="Chat completions URL of the router; overrides each set's `endpoint`."
    )
    tier_header: str | None = Field(default="X-Router-Tier", description="Response header naming the serving tier.")
    tier_field: str | None = Field(
        default="router.tier", description="Dotted path of the serving tier in the JSON response body."
    )
    decision_wait_s: float = Field(
        default=20.0, ge=0, description="Without header or body field: how long to wait for the probe's RoutingDecision."
    )
    concurrency: int = Field(default=4, ge=1, description="Probes in flight at once.")
    n: int = Field(default=3, ge=1, description="N-of-M: bad probes that fire an alert...")
    m: int = Field(default=5, ge=1, description="...among the latest M probes of a canary (or of a router, no-answer).")
    side_fraction: float = Field(default=0.5, gt=0, le=1, description="Share of a side's canaries firing for a side alert.")
    lookback_minutes: int = Field(default=120, ge=1, description="Results older than this are not judged.")
    lease_topic: str = Field(default="routerwatch.scheduler.lease", description="One-partition topic of the prober lease.")
    lease_group: str = Field(default="routerwatch-canary-prober", description="Consumer group holding the lease.")
    lease_session_timeout_s: float = Field(
        default=10.0, ge=6, le=300, description="A holder that stops heartbeating loses the lease after this."
    )
    state_file: Path = Field(default=Path(".run/canary-schedule.json"), description="Last probe time per canary.")

    @model_validator(mode="after")
    def _n_within_m(self) -> CanarySettings:
        if self.n > self.m:
            raise ValueError(f"n ({self.n}) cannot exceed m ({self.m})")
        return self


class HttpSettings(_Section):
    host: str = Field(
        default="127.0.0.1",
        description="Address `serve`'s HTTP endpoints listen on (the CLI's sql, report and alerts ask serve there). "
        "Beyond loopback (0.0.0.0, an interface address, a name) only with ROUTERWATCH_HTTP__TOKEN.",
    )
    port: int = Field(default=9464, ge=0, le=65535, description="/metrics, /health and /query of `serve`.")
    token: SecretStr | None = Field(
        default=None,
        description="Bearer token every endpoint but /health and /metrics requires; "
        "needed to listen beyond loopback (see routerwatch.ingest.webguard).",
    )

    def loopback(self) -> bool:
        """True when serve listens on this machine only (a token is then optional)."""
        from routerwatch.ingest.webguard import is_loopback

        return is_loopback(self.host)


class OtlpSettings(_Section):
    """The OTLP/HTTP traces receiver of `serve` (``POST /v1/traces``; see docs/otlp.md and routerwatch.otlp)."""

    enabled: bool = Field(default=False, description="Listen for OTLP traces and turn each trace into a RoutingDecision.")
    host: str = Field(
        default="127.0.0.1",
        description="Address the OTLP receiver listens on; beyond loopback only with ROUTERWATCH_HTTP__TOKEN.",
    )
    port: int = Field(default=4318, ge=0, le=65535, description="OTLP/HTTP's usual port; needs ROUTERWATCH_HTTP__TOKEN beyond loopback.")
    grace_s: float = Field(default=2.0, ge=0, description="After a trace's root or router span arrives: wait this long for late spans.")
    window_s: float = Field(default=30.0, gt=0, description="A trace open this long (since its first span) is assembled or dead-lettered.")
    max_open_traces: int = Field(default=10_000, ge=1, description="Traces held at once; spans of new traces beyond it are dead-lettered.")
    max_spans_per_trace: int = Field(default=256, ge=2, description="A trace with more spans is dead-lettered whole.")
    max_body_bytes: int = Field(default=4 << 20, ge=1 << 10, description="Largest request body, after gzip decoding (413 beyond).")
    remember_traces: int = Field(default=20_000, ge=0, description="Assembled traces remembered to tell re-sent spans from late ones.")


class Settings(BaseSettings):
    """Everything the service reads from its environment."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", frozen=True
    )

    clickhouse_url: SecretStr = Field(
        default=SecretStr("chdb://.run/store"),
        description="chdb:///path for the embedded store (default: .run/store under the working directory) or "
        "http(s)://user:pass@host:8123 for a ClickHouse server; a secret because it may hold a password.",
    )
    database: str = Field(
        default="routerwatch", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="ClickHouse database of routerwatch's tables; `routerwatch migrate` creates it if it does not exist.",
    )
    kafka_bootstrap: str = Field(
        default="127.0.0.1:9092",
        description="Kafka bootstrap servers, host:port[,host:port...]; set it to use an existing broker "
        "(`make demo` then starts none).",
    )
    kafka_security: KafkaSecurity = Field(
        default=KafkaSecurity(), title="Kafka security",
        description="TLS and SASL of every Kafka client routerwatch creates: the ingest consumer, the dead-letter "
        "producer, the canary prober's lease and its SDK, `wait`, `dlq`, `simulate` and the example router. "
        "A combination that cannot work (SASL without a user, a CA file with a plaintext protocol, a missing file) "
        "is a configuration error naming the variable. Routers pass the same options to the SDK as constructor arguments.",
    )
    topics: TopicSettings = Field(
        default=TopicSettings(), title="Kafka topics",
        description="The topics routerwatch reads and writes; routers' SDKs must produce to the same names.",
    )
    ingest: IngestSettings = Field(
        default=IngestSettings(), title="Ingest",
        description="The consumer inside `serve` that validates the events, stores them in ClickHouse in batches and "
        "dead-letters what it cannot store.",
    )
    http: HttpSettings = Field(
        default=HttpSettings(), title="HTTP endpoints and security",
        description="`serve`'s endpoints: /health and /metrics are open; /query, /alerts, /alerts/evaluate, "
        "/baselines/learn and /canaries are guarded (bearer token, CSRF rules). Who can reach what: "
        "deploy/threat-model.md.",
    )
    query: QuerySettings = Field(
        default=QuerySettings(), title="Read-only SQL limits",
        description="Limits of the read-only SQL surface (/query, `routerwatch sql`, `report`), applied by the engine "
        "to every such query; none can be turned off (0 is not accepted).",
    )
    metrics: MetricsSettings = Field(
        default=MetricsSettings(), title="Prometheus metrics", description="What `serve` exports on /metrics."
    )
    scheduler: SchedulerSettings = Field(
        default=SchedulerSettings(), title="Drift scheduler and alerting",
        description="The drift detectors inside `serve`: their schedule, false-alarm budget, baselines, latency "
        "targets and where their alerts go.",
    )
    canary: CanarySettings = Field(
        default=CanarySettings(), title="Canary probes",
        description="Canary probes fired by `serve`: which sets, at which router, how the serving tier is read, and "
        "the N-of-M alert windows. One `serve` at a time probes (a Kafka lease).",
    )
    otlp: OtlpSettings = Field(
        default=OtlpSettings(), title="OTLP traces receiver",
        description="The OTLP/HTTP traces receiver of `serve` (POST /v1/traces; docs/otlp.md): each trace becomes "
        "one RoutingDecision on the decisions topic; broken or overflowing traces are dead-lettered.",
    )
    log_level: str = Field(
        default="INFO", description="Log level of `serve` (DEBUG, INFO, WARNING, ERROR); the other subcommands log at INFO."
    )
    sql_dir: Path | None = Field(default=None, description="Where sql/migrations lives; default: the package's copy (a wheel install) or the source tree's sql/.")

    prices_file: Path | None = Field(
        default=None, description="Price table (TOML); default: the package's copy of deploy/prices.toml (a wheel install) or the source tree's."
    )
    price_source: Literal["table", "litellm"] = Field(
        default="table",
        description="table: the price file's numbers only; litellm: also every price of the installed LiteLLM's "
        "bundled model cost map the file does not have (read offline, the file's rows win; docs/prices.md).",
    )

    def price_table(self):  # -> routerwatch.prices.PriceTable
        """Load the price table named by ``prices_file`` (or the shipped default), from ``price_source``."""
        from routerwatch.prices import default_prices_file, load_prices

        return load_prices(self.prices_file or default_prices_file(), self.price_source)

    def store_dsn(self) -> str:
        """The ClickHouse DSN in clear, for opening the store (never log it)."""
        return self.clickhouse_url.get_secret_value()

    def migrations_dir(self) -> Path:
        """The migrations folder: ``sql_dir/migrations``, by default the package's copy (a wheel install) or the source tree's."""
        from routerwatch.storage.migrations import default_sql_dir

        return (self.sql_dir or default_sql_dir()) / "migrations"

    @field_validator("clickhouse_url")
    @classmethod
    def _known_scheme(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().startswith(("chdb:", "http://", "https://")):
            raise ValueError("must start with chdb:// (embedded) or http:// / https:// (ClickHouse server)")
        return value


def load_settings(**overrides: object) -> Settings:
    """Build the settings from the environment, raising :class:`ConfigError` naming the variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for item in exc.errors(include_url=False):
            variable = ENV_PREFIX + "__".join(str(p) for p in item["loc"]).upper()
            problems.append(f"{variable}: {item['msg']}")
        raise ConfigError("invalid routerwatch settings: " + "; ".join(problems)) from exc
