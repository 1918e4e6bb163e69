"""Text that is safe to print on a terminal.

Tenant names, categories, canary errors and dead-letter details come from routers and providers
that routerwatch does not control. Printed raw, an ANSI escape in a tenant name can recolour,
hide or rewrite what on-call reads (``\\x1b[2J`` clears the screen, ``\\x1b]8;;`` makes a link),
and a bidirectional override can reorder a line. :func:`terminal_safe` shows every such
character as a visible escape instead.
"""

from __future__ import annotations

import re

# C0 controls (tab and newline included: inside a table cell they break the layout too), DEL, C1
# controls, and the Unicode bidirectional embeddings, overrides and isolates.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def terminal_safe(text: str) -> str:
    """``text`` with every control, escape and bidi-override character shown as ``\\xNN`` / ``\\uNNNN``."""
    return _UNSAFE.sub(_escape, text)
