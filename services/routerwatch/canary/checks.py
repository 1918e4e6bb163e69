"""Answer checks of canaries: pure functions, answer text in, (passed, reason) out."""

from __future__ import annotations

import json
import math
import re

from routerwatch.canary.config import Check
from routerwatch.events.vocabulary import CheckKind

_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def check_answer(check: Check, answer: str) -> tuple[bool, str]:
    """Judge ``answer``; the reason says why it failed (empty when it passed)."""
    if check.kind is CheckKind.EXACT:
        got, want = answer.strip(), (check.expected or "").strip()
        if not check.case_sensitive:
            got, want = got.lower(), want.lower()
        return (got == want, "" if got == want else f"expected {want!r}, got {got[:200]!r}")
    if check.kind is CheckKind.REGEX:
        flags = 0 if check.case_sensitive else re.IGNORECASE
        found = re.search(check.pattern or "", answer, flags) is not None
        return (found, "" if found else f"pattern {check.pattern!r} not found in {answer[:200]!r}")
    if check.kind is CheckKind.JSON_SCHEMA:
        from jsonschema import Draft202012Validator

        try:
            document = json.loads(answer)
        except ValueError as exc:
            return False, f"answer is not JSON: {exc}"
        errors = sorted(Draft202012Validator(check.json_schema or {}).iter_errors(document), key=str)
        if errors:
            first = errors[0]
            where = "/".join(str(p) for p in first.absolute_path) or "<root>"
            return False, f"{where}: {first.message}"
        return True, ""
    numbers = _NUMBER.findall(answer)
    if not numbers:
        return False, f"no number in {answer[:200]!r}"
    got = float(numbers[0])
    ok = math.isclose(got, check.value or 0.0, rel_tol=0.0, abs_tol=check.tolerance)
    return ok, "" if ok else f"expected {check.value} +/- {check.tolerance}, got {got}"
