"""Every hookspec is documented (signature + description) in docs/hooks.md and has a test."""

from __future__ import annotations

import inspect
from pathlib import Path

from agentworld import hookspecs

ROOT = Path(__file__).resolve().parent.parent


def hookspec_functions() -> dict[str, object]:
    return {
        name: fn for name, fn in vars(hookspecs).items()
        if inspect.isfunction(fn) and name.startswith("agentworld_")
        and hasattr(fn, "agentworld_spec")
    }


def test_the_three_extension_points_exist() -> None:
    assert set(hookspec_functions()) == set(hookspecs.HOOK_NAMES) == {
        "agentworld_register_executors",
        "agentworld_register_module_stores",
        "agentworld_register_compat_rules",
    }


def test_every_hookspec_has_a_docstring_and_a_documented_signature() -> None:
    docs = (ROOT / "docs" / "hooks.md").read_text()
    for name, fn in hookspec_functions().items():
        assert (inspect.getdoc(fn) or "").strip(), f"{name} has no docstring"
        params = ", ".join(inspect.signature(fn).parameters)  # type: ignore[arg-type]
        heading = f"## `{name}({params})`"
        assert heading in docs, f"docs/hooks.md lacks the heading {heading!r}"
        section = docs.split(heading, 1)[1].split("\n## ", 1)[0]
        assert "register(" in section and len(section.split()) > 40, f"{name} is under-documented"


def test_every_hookspec_has_a_test() -> None:
    this_file = Path(__file__).name
    test_sources = "\n".join(
        path.read_text() for path in (ROOT / "tests").glob("test_*.py") if path.name != this_file
    )
    for name in hookspec_functions():
        assert f"def {name}(" in test_sources, f"no test implements {name}"
