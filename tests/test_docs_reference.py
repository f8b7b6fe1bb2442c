"""The reference pages stay complete: every command and option, every environment variable, every
page in the index, and the ABI page's worked guest is the one that ships."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from agentworld.cli import cli

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def commands(group: click.Group, path: tuple[str, ...] = ("agentworld",)
             ) -> Iterator[tuple[str, click.Command]]:
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            yield from commands(command, (*path, name))
        else:
            yield " ".join((*path, name)), command


def section(text: str, heading: str) -> str:
    """The text under the heading that names `heading` in backquotes, up to the next heading of
    the same or a higher level."""
    found = re.search(rf"^(#+) `{re.escape(heading)}`\s*$", text, re.M)
    assert found is not None, f"docs/cli.md has no heading for `{heading}`"
    level = len(found.group(1))
    rest = text[found.end():]
    following = re.search(rf"^#{{1,{level}}} ", rest, re.M)
    return rest[:following.start()] if following else rest


@pytest.mark.parametrize(("name", "command"), list(commands(cli)), ids=lambda v: str(v))
def test_the_cli_reference_has_every_command_and_option(name: str, command: click.Command
                                                        ) -> None:
    text = section((DOCS / "cli.md").read_text(), name)
    for parameter in command.params:
        if isinstance(parameter, click.Option):
            longest = max(parameter.opts, key=len)
            assert longest in text, f"{name}: {longest} is not documented"


def test_operations_names_every_environment_variable_the_code_reads() -> None:
    used: set[str] = set()
    for folder in ("agentworld", "backends", "plugins", "scripts"):
        for path in (ROOT / folder).rglob("*"):
            if path.suffix in (".py", ".sh"):
                used |= set(re.findall(r"\bAGENTWORLD_[A-Z_]+\b", path.read_text()))
    assert {"AGENTWORLD_LOAD_PLUGINS", "AGENTWORLD_WASMER_PYTHON"} <= used
    operations = (DOCS / "operations.md").read_text()
    assert sorted(name for name in used | {"XDG_CONFIG_HOME"} if name not in operations) == []


def test_the_index_lists_every_page() -> None:
    index = (DOCS / "index.md").read_text()
    pages = {path.name for path in DOCS.glob("*.md")} - {"index.md"}
    assert sorted(page for page in pages if f"]({page})" not in index) == []


def test_the_worked_guest_on_the_abi_page_is_the_shipped_one() -> None:
    text = (DOCS / "guest-abi.md").read_text()
    (shown,) = re.findall(r"^```wat\n(.*?)^```$", text, re.M | re.S)
    shipped = ROOT / "agentworld" / "testing" / "guests" / "tick_counter.wat"
    assert shown == shipped.read_text()
    assert ";; @include" not in shown  # written with nothing but the ABI
