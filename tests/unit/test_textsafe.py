"""Terminal-safe output: text from routers and providers never reaches a terminal raw."""

from __future__ import annotations

from datetime import UTC, datetime

from routerwatch.report.scoreboard import Report, render_text
from routerwatch.textsafe import terminal_safe


def test_controls_escapes_and_bidi_overrides_are_shown_not_obeyed():
    assert terminal_safe("acme\x1b[2J\x1b]8;;http://x\x07evil") == "acme\\x1b[2J\\x1b]8;;http://x\\x07evil"
    assert terminal_safe("a\tb\nc\r\x7f\x9b") == "a\\x09b\\x0ac\\x0d\\x7f\\x9b"
    assert terminal_safe("admin\u202egnp.exe") == "admin\\u202egnp.exe"
    assert terminal_safe("tenant-Ünïcode 租户 ok") == "tenant-Ünïcode 租户 ok"


def test_the_text_report_escapes_a_hostile_tenant_name():
    # Before: report printed the tenant's ANSI escape raw (it cleared on-call's screen).
    hostile = "acme\x1b[2J\x1b[31mPWNED"
    report = Report(
        since=datetime(2026, 1, 1, tzinfo=UTC),
        until=datetime(2026, 1, 2, tzinfo=UTC),
        by="tenant",
        sections={"tenants": [{"tenant": hostile, "requests": 3}]},
    )
    text = render_text(report)
    assert "\x1b" not in text
    assert "acme\\x1b[2J\\x1b[31mPWNED" in text
