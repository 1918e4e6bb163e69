"""Shared pieces of the performance benchmarks: results, statistics, machine facts, a broker.

Every benchmark module under ``bench/perf/`` exposes ``run(ctx: Context) -> Section`` and can be
run alone (``python -m bench.perf.<name> [--quick]``). A :class:`Section` holds
:class:`Comparison` rows: a figure of routerwatch and the same figure of a named baseline,
measured in the same run on the same broker and store, each over repeated runs (median and
spread), their ratio, and the goal with whether it was met. ``bench/perf/run.py`` runs every
section and renders ``bench/RESULTS.md`` from them.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "bench" / "out"


@dataclass
class Measure:
    """Repeated measurements of one figure: median and spread (min..max) over the runs."""

    values: list[float]
    unit: str

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def spread(self) -> tuple[float, float]:
        return (min(self.values), max(self.values))

    def text(self) -> str:
        lo, hi = self.spread
        if len(self.values) == 1:
            return f"{fmt(self.median)} {self.unit}"
        return f"{fmt(self.median)} {self.unit} ({fmt(lo)}..{fmt(hi)}, n={len(self.values)})"


@dataclass
class Comparison:
    """routerwatch against a baseline on one figure.

    ``ratio`` is routerwatch / baseline; ``higher_is_better`` says which way is good (throughput:
    True; cost, latency, memory: False). ``goal`` is the issue's goal in words, ``met`` whether the
    measured figures meet it (None when the goal is not a pass/fail figure).
    """

    figure: str
    routerwatch: Measure
    baseline_name: str
    baseline: Measure | None
    higher_is_better: bool
    goal: str = ""
    met: bool | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or self.baseline.median == 0:
            return None
        return self.routerwatch.median / self.baseline.median


@dataclass
class Section:
    """One benchmark's results: its comparisons, free-form detail lines, and how it was run."""

    name: str
    title: str
    comparisons: list[Comparison] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    setup: str = ""
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def save(self) -> Path:
        OUT.mkdir(parents=True, exist_ok=True)
        path = OUT / f"{self.name}.json"
        path.write_text(json.dumps(self.to_json(), indent=1))
        return path

    @classmethod
    def load(cls, path: Path) -> Section:
        data = json.loads(path.read_text())
        comps = []
        for c in data.pop("comparisons"):
            rw = Measure(**c.pop("routerwatch"))
            base = c.pop("baseline")
            comps.append(Comparison(routerwatch=rw, baseline=Measure(**base) if base else None, **c))
        return cls(comparisons=comps, **data)


@dataclass
class Context:
    """What a benchmark gets: a Kafka bootstrap, a scratch directory, and whether to run quick."""

    kafka: str
    workdir: Path
    quick: bool = False
    repeats: int = 5


def fmt(x: float) -> str:
    if x == 0:
        return "0"
    a = abs(x)
    if a >= 100_000:
        return f"{x:,.0f}"
    if a >= 100:
        return f"{x:.0f}"
    if a >= 1:
        return f"{x:.2f}"
    return f"{x:.3g}"


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0..100) by linear interpolation between closest ranks."""
    data = sorted(values)
    if not data:
        raise ValueError("no values")
    k = (len(data) - 1) * p / 100
    f = int(k)
    c = min(f + 1, len(data) - 1)
    return data[f] + (data[c] - data[f]) * (k - f)


def rss_mb(pid: int | None = None) -> float:
    """Resident set size of a process (default: this one) in MiB, from /proc."""
    with open(f"/proc/{pid or os.getpid()}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def anon_mb(pid: int | None = None) -> float:
    """Anonymous resident memory of a process in MiB (smaps_rollup): RSS less its mapped files
    (for serve, chDB's ~250 MiB library is file-backed and constant)."""
    with open(f"/proc/{pid or os.getpid()}/smaps_rollup") as fh:
        for line in fh:
            if line.startswith("Anonymous:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no Anonymous in smaps_rollup")


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU seconds a process (default: this one) has used, from /proc."""
    if pid is None:
        t = os.times()
        return t.user + t.system
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def machine() -> dict[str, str]:
    """Machine, versions and date for the results header."""
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for pkg in ("aiokafka", "faust-streaming", "chdb", "clickhouse-connect", "pydantic", "opentelemetry-sdk", "orjson"):
        try:
            versions[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "unknown"
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": f"{cpu}, {os.cpu_count()} cores",
        "memory": mem,
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "kafka": "Apache Kafka 4.1.1 (KRaft, single node, loopback)",
        **versions,
    }


def local_broker(workdir: Path) -> tuple[str, Any]:
    """Start a fresh local broker (deploy/kafka/start.sh) on free ports; returns (bootstrap, stop)."""
    import socket

    def free() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    data = workdir / "kafka"
    env = dict(os.environ, KAFKA_PORT=str(free()), KAFKA_CONTROLLER_PORT=str(free()), KAFKA_DATA_DIR=str(data),
               KAFKA_NUM_PARTITIONS="1", KAFKA_HEAP_OPTS="-Xmx1g")
    done = subprocess.run([str(REPO / "deploy/kafka/start.sh")], env=env, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"local Kafka broker did not start:\n{done.stderr[-3000:]}")

    def stop() -> None:
        subprocess.run([str(REPO / "deploy/kafka/stop.sh"), "--wipe"], env=env, capture_output=True, timeout=120)

    return done.stdout.strip().splitlines()[-1], stop


def timed(fn: Any) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0
