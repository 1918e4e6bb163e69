"""The ``routerwatch example-router`` subcommand.

``routerwatch example-router [--host H] [--port P] [switch flags]`` runs the
example router until SIGTERM or SIGINT, then closes the SDK (flushing queued
decisions). Switch flags set the starting switches (see
:mod:`routerwatch.examplerouter.server`)::

    routerwatch example-router --port 8088 --gate-threshold 0.9 --verifier reject_all \\
        --slow small=500 --fail small --down

``routerwatch example-router switch [--url U] [--reset] [FIELD=VALUE ...]``
changes the switches of a running router and prints them; with no
assignment it only prints them. VALUE is JSON when it parses as JSON, else a
string; ``fail_providers`` also takes a comma list (``fail_providers=small,medium``,
``fail_providers=`` for none) and ``slow_ms`` also takes ``slow_ms.TIER=MS``::

    routerwatch example-router switch gate_threshold=0.99
    routerwatch example-router switch verifier=reject_all slow_ms.large=800 down=false

The admin API takes a bearer token from ``EXAMPLE_ROUTER_TOKEN`` (both the router and
``switch`` read it; required to listen beyond loopback) and refuses cross-origin and
non-JSON requests.

Exit codes as in the other commands: 0 ok, 2 bad usage or switches (or a refused token),
3 the router is unreachable.

Until this is hooked into ``routerwatch``, run it as
``python -m routerwatch.examplerouter.cli [example-router arguments]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import urllib.error
import urllib.request
from typing import Any

from pydantic import ValidationError

from routerwatch.examplerouter.router import TIERS, Switches

DEFAULT_PORT = 8088
DEFAULT_ROUTER_ID = "sim-router"

# Which command-line flag sets which switch, so that errors name what the user typed.
_FLAG_OF = {
    "gate_threshold": "--gate-threshold",
    "verifier": "--verifier",
    "slow_ms": "--slow",
    "fail_providers": "--fail",
    "down": "--down",
    "expose_tier_header": "--hide-tier-header",
    "expose_tier_body": "--hide-tier-body",
}


def register(subparsers: Any) -> None:
    """Add the ``example-router`` subcommand (and its ``switch`` client) to ``routerwatch``'s subparsers.

    Both set ``func`` to a function of the parsed arguments returning the exit code.
    """
    tier_names = [t.name for t in TIERS]
    p = subparsers.add_parser(
        "example-router",
        help="run a simulated three-tier router (OpenAI-compatible) instrumented with the SDK",
        description="An OpenAI-compatible router over simulated small/medium/large tiers with a confidence "
        "gate, emitting one RoutingDecision per request; switches break it on purpose. "
        "`example-router switch` changes the switches of a running one.",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT}; 0 picks a free port")
    p.add_argument("--kafka-bootstrap", help="default $ROUTERWATCH_KAFKA_BOOTSTRAP, else the SDK's 127.0.0.1:9092")
    p.add_argument("--decisions-topic",
                   help="default $ROUTERWATCH_TOPICS__DECISIONS (what `serve` reads), else the SDK's topic")
    p.add_argument("--router-id", default=DEFAULT_ROUTER_ID, help=f"default {DEFAULT_ROUTER_ID}")
    p.add_argument("--environment", default="production", help="the decisions' environment (default production)")
    g = p.add_argument_group("switches (change them later with `example-router switch` or POST /admin/switches)")
    g.add_argument("--gate-threshold", type=float, help="confidence a cheap tier needs to serve (default 0.5)")
    g.add_argument("--verifier", choices=["normal", "reject_all"], help="reject_all: every answer is rejected")
    g.add_argument("--slow", action="append", metavar="TIER=MS", help=f"extra latency at a tier ({', '.join(tier_names)})")
    g.add_argument("--fail", action="append", metavar="TIER", help="that tier's provider errors on every attempt")
    g.add_argument("--down", action="store_true", help="answer 503 to every chat request")
    g.add_argument("--hide-tier-header", action="store_true", help="do not send X-Router-Tier")
    g.add_argument("--hide-tier-body", action="store_true", help="leave the `router` object out of responses")
    p.set_defaults(func=cmd_example_router)

    sub = p.add_subparsers(dest="example_router_action", metavar="{switch}")
    sw = sub.add_parser("switch", help="show or change the switches of a running example router")
    sw.add_argument("--url", default=f"http://127.0.0.1:{DEFAULT_PORT}", help="the router's base URL")
    sw.add_argument("--reset", action="store_true", help="back to the default switches first")
    sw.add_argument("assignments", nargs="*", metavar="FIELD=VALUE")
    sw.set_defaults(func=cmd_switch)


def switches_from_args(args: argparse.Namespace) -> Switches:
    """The starting switches from the flags. Raises ``ValueError`` naming the flag."""
    given: dict[str, Any] = {}
    if args.gate_threshold is not None:
        given["gate_threshold"] = args.gate_threshold
    if args.verifier is not None:
        given["verifier"] = args.verifier
    if args.slow:
        slow: dict[str, str] = {}
        for item in args.slow:
            tier, sep, ms = item.partition("=")
            if not sep or not tier:
                raise ValueError(f"--slow wants TIER=MS, got {item!r}")
            slow[tier.strip()] = ms.strip()
        given["slow_ms"] = slow
    if args.fail:
        given["fail_providers"] = [t.strip() for item in args.fail for t in item.split(",") if t.strip()]
    if args.down:
        given["down"] = True
    if args.hide_tier_header:
        given["expose_tier_header"] = False
    if args.hide_tier_body:
        given["expose_tier_body"] = False
    try:
        return Switches.model_validate(given)
    except ValidationError as exc:
        problems = []
        for item in exc.errors(include_url=False):
            field = str(item["loc"][0]) if item["loc"] else ""
            detail = ".".join(str(part) for part in item["loc"][1:] if part != "[key]")
            problems.append(f"{_FLAG_OF.get(field, field)}{' ' + detail if detail else ''}: {item['msg']}")
        raise ValueError("; ".join(problems)) from exc


def cmd_example_router(args: argparse.Namespace) -> int:
    from routerwatch.examplerouter.server import serve
    from routerwatch.sdk import DECISIONS_TOPIC, SdkConfig

    try:
        switches = switches_from_args(args)
    except ValueError as exc:
        print(f"routerwatch example-router: {exc}", file=sys.stderr)
        return 2
    from routerwatch.errors import ConfigError as _ConfigError
    from routerwatch.kafka_client import security_from_environ

    try:  # the same ROUTERWATCH_KAFKA_SECURITY__* variables as serve
        kafka_security = security_from_environ(os.environ).sdk_options()
    except _ConfigError as exc:
        print(f"routerwatch example-router: {exc}", file=sys.stderr)
        return 2
    sdk = SdkConfig(
        bootstrap_servers=args.kafka_bootstrap or os.environ.get("ROUTERWATCH_KAFKA_BOOTSTRAP") or "127.0.0.1:9092",
        **kafka_security,
        router_id=args.router_id,
        router_version="example-router-1",
        strategy="cascade",
        environment=args.environment,
        decisions_topic=args.decisions_topic or os.environ.get("ROUTERWATCH_TOPICS__DECISIONS") or DECISIONS_TOPIC,
    )
    from routerwatch.errors import ConfigError
    from routerwatch.examplerouter.server import TOKEN_VARIABLE

    try:
        asyncio.run(serve(args.host, args.port, sdk, switches, admin_token=os.environ.get(TOKEN_VARIABLE) or None))
    except ConfigError as exc:
        print(f"routerwatch example-router: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the port is taken, the host does not resolve
        print(f"routerwatch example-router: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 2
    return 0


def parse_assignments(items: list[str]) -> dict[str, Any]:
    """``FIELD=VALUE`` items into a switches patch. Raises ``ValueError`` on a malformed item."""
    patch: dict[str, Any] = {}
    for item in items:
        field, sep, text = item.partition("=")
        field = field.strip()
        if not sep or not field:
            raise ValueError(f"want FIELD=VALUE, got {item!r}")
        try:
            value: Any = json.loads(text)
        except ValueError:
            value = text
        if field.startswith("slow_ms."):
            slow = patch.setdefault("slow_ms", {})
            if not isinstance(slow, dict):
                raise ValueError("slow_ms is given both whole and per tier")
            slow[field.removeprefix("slow_ms.")] = value
            continue
        if field == "fail_providers" and isinstance(value, str):
            value = [t.strip() for t in value.split(",") if t.strip()]
        patch[field] = value
    return patch


def _call(url: str, method: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    from routerwatch.ingest.webguard import client_headers

    data = json.dumps(body).encode() if body is not None else (b"{}" if method == "POST" else None)
    token = os.environ.get("EXAMPLE_ROUTER_TOKEN")
    request = urllib.request.Request(url, data=data, method=method, headers=client_headers(token))
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw)
        except ValueError:
            return exc.code, {"error": {"message": raw.decode(errors="replace")[:500]}}


def _message(body: Any) -> Any:
    """The error text of an answer: the OpenAI-shaped ``{"error": {"message"}}`` or the guard's ``{"error": "..."}``."""
    error = body.get("error", body) if isinstance(body, dict) else body
    return error.get("message", error) if isinstance(error, dict) else error


def cmd_switch(args: argparse.Namespace) -> int:
    base = args.url.rstrip("/")
    try:
        patch = parse_assignments(args.assignments)
    except ValueError as exc:
        print(f"routerwatch example-router switch: {exc}", file=sys.stderr)
        return 2
    try:
        if args.reset:
            status, body = _call(f"{base}/admin/reset", "POST")
            if status != 200:
                print(f"routerwatch example-router switch: reset answered {status}: {body}", file=sys.stderr)
                return 1
        if patch:
            status, body = _call(f"{base}/admin/switches", "POST", patch)
            if status != 200:
                print(f"routerwatch example-router switch: rejected ({status}): {_message(body)}", file=sys.stderr)
                return 2
        elif not args.reset:
            status, body = _call(f"{base}/admin/switches", "GET")
            if status != 200:
                print(f"routerwatch example-router switch: refused ({status}): {_message(body)}", file=sys.stderr)
                return 2
    except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
        print(f"routerwatch example-router switch: no router at {base}: {exc}", file=sys.stderr)
        return 3
    print(json.dumps(body, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the subcommand standalone: ``python -m routerwatch.examplerouter.cli [--port 8088 ...]``."""
    parser = argparse.ArgumentParser(prog="routerwatch")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["example-router", *(sys.argv[1:] if argv is None else argv)])
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
