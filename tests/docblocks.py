"""The fenced code blocks of README.md and docs/*.md, with the marker that says what runs each one.

A marker is the HTML comment on the line right before a block's opening fence (blank lines between
are allowed), e.g. ``<!-- test: sdk -->`` or ``<!-- cli -->``; ``tests/unit/test_doc_code_blocks.py``
lists what each kind means and checks that every block has one. Tests load a named block with
:func:`named_block`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^(```+)(\S*)\s*$")
MARKER = re.compile(r"^<!--\s*([\w:-]+)(?::\s*(.*?))?\s*-->$")


@dataclass(frozen=True)
class Block:
    path: Path  # the document
    line: int  # 1-based line of the opening fence
    lang: str  # the fence's info string ('' when none)
    body: str  # the code, with its final newline
    kind: str | None  # the marker's kind ('test', 'cli', 'text', ...), None without a marker
    arg: str  # what follows 'kind:' in the marker ('' when nothing)

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"


def documents() -> list[Path]:
    """README.md and every page of the documentation site."""
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def blocks(path: Path) -> list[Block]:
    """Every fenced block of one document, in order."""
    lines = path.read_text().splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        fence, lang = opening.groups()
        j = i + 1
        while j < len(lines) and lines[j].strip() != fence:
            j += 1
        body = "".join(line + "\n" for line in lines[i + 1 : j])
        k = i - 1
        while k >= 0 and not lines[k].strip():
            k -= 1
        marker = MARKER.match(lines[k].strip()) if k >= 0 else None
        if marker and marker.group(1) == "example:start":  # docs/otlp.md's region markers
            kind, arg = "example:start", ""
        elif marker:
            kind, arg = marker.group(1), (marker.group(2) or "").strip()
        else:
            kind, arg = None, ""
        found.append(Block(path, i + 1, lang, body, kind, arg))
        i = j + 1
    return found


def all_blocks() -> list[Block]:
    return [b for path in documents() for b in blocks(path)]


def named_block(path: Path | str, name: str) -> str:
    """The code of the block marked ``<!-- test: name -->`` in ``path`` (relative to the repository)."""
    path = REPO / path if not Path(path).is_absolute() else Path(path)
    found = [b.body for b in blocks(path) if b.kind == "test" and b.arg == name]
    assert len(found) == 1, f"{path.relative_to(REPO)}: {len(found)} blocks marked <!-- test: {name} -->, expected one"
    return found[0]
