"""docs/writing-modules.md works as written: from an empty folder to a ticking instance, in C
and in Rust, running the page's own code and commands."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from sdkkit import ROOT, build_module, sdk_modules

from agentworld import World

DOC = ROOT / "docs" / "writing-modules.md"


def walkthrough(language: str) -> tuple[str, str]:
    """The page's module source and the shell commands that follow it, for `language`."""
    heading = {"c": "## Writing a module in C", "rust": "## Writing a module in Rust"}[language]
    section = DOC.read_text().split(heading, 1)[1].split("\n## ", 1)[0]
    source = re.search(rf"```{language}\n(.+?)```", section, re.S)
    commands = re.search(r"```bash\n(.+?)```", section, re.S)
    assert source is not None and commands is not None
    return source.group(1), commands.group(1)


@pytest.mark.slow
@pytest.mark.parametrize(("language", "filename"), [("c", "counter.c"), ("rust", "counter.rs")])
def test_the_walkthrough_runs_as_written(tmp_path_factory: pytest.TempPathFactory,
                                         language: str, filename: str) -> None:
    sdk_modules(tmp_path_factory)  # the toolchains are there (or the failure names the script)
    folder = tmp_path_factory.mktemp(f"doc-{language}")
    source, commands = walkthrough(language)
    (folder / filename).write_text(source)
    env = {**os.environ, "SDK": str(ROOT / "guest-sdk"),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", commands], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert 'emit: {"kind": "counter.ticked", "payload": {"count": 42}}' in done.stdout
    ticks = re.findall(r'module\.emitted .*"payload": \{"count": (\d+)\}', done.stdout)
    assert ticks == ["1", "2", "3"]
    world = World.load_from_dir(folder / "world")
    assert world.module_state("my.counter#1") == (3).to_bytes(8, "little")


def test_the_page_builds_with_the_flags_the_tests_use() -> None:
    build = build_module()
    _, c_commands = walkthrough("c")
    for flag in build.CLANG_FLAGS:
        assert flag in c_commands or (flag.startswith("-W") and "-Wl" not in flag), flag
    _, rust_commands = walkthrough("rust")
    flags = re.search(r'flags="(.+?)"', rust_commands)
    assert flags is not None and tuple(flags.group(1).split()) == build.RUSTC_FLAGS
