"""The Python samples of the documentation, extracted so that tests can run every one of them.

A sample is a fenced block opened with three backticks and `python`. One whose first line is a
comment naming a file (`# my_package/sqlite_store.py`) is that file: it is written there before
the other samples of the same document run, so they can import it. A sample that cannot run
here is preceded by a line `<!-- not run: REASON -->`; use that sparingly. Lines of a sample
that start with `#> ` are what it must print.
"""

from __future__ import annotations

import re
from pathlib import Path

from attrs import frozen

ROOT = Path(__file__).resolve().parent.parent

_FENCE = re.compile(r"^```python\n(.*?)^```$", re.M | re.S)
_FILE = re.compile(r"# ([\w./-]+\.py)\n")
_OPT_OUT = re.compile(r"<!-- not run: (.+?) -->\n$")


@frozen
class Sample:
    """One Python block of a document."""

    document: Path
    line: int
    code: str
    file: str | None
    not_run: str | None

    def where(self) -> str:
        """`path:line` of the block, for messages."""
        return f"{self.document.relative_to(ROOT)}:{self.line}"


def documents() -> list[Path]:
    """Every document shipped with the repository that may hold samples."""
    return sorted([ROOT / "README.md", ROOT / "CONTRIBUTING.md",
                   ROOT / "agentworld" / "testing" / "guests" / "README.md",
                   *(ROOT / "docs").glob("*.md")])


def samples(document: Path) -> list[Sample]:
    """The Python samples of `document`, in order."""
    text = document.read_text()
    found = []
    for match in _FENCE.finditer(text):
        before = text[:match.start()]
        opt_out = _OPT_OUT.search(before)
        named = _FILE.match(match.group(1))
        found.append(Sample(document, before.count("\n") + 1, match.group(1),
                            named.group(1) if named else None,
                            opt_out.group(1) if opt_out else None))
    return found
