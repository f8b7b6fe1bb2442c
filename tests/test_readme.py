"""README gives exactly two set-up commands, and CI runs the README's test command verbatim."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def setup_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    quickstart = readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", quickstart)


def test_two_commands_demo_and_tests() -> None:
    demo, tests = setup_commands()
    assert demo.endswith("agentworld demo") and "pip install" in demo
    assert tests.endswith("pytest") and "[test]" in tests


def test_ci_runs_the_readme_test_command() -> None:
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert setup_commands()[1] in ci_lines


def test_the_python_example_runs(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## In ten lines of Python", 1)[1]
    code = re.search(r"```python\n(.+?)\n```", section, re.S)
    assert code is not None
    source = code.group(1)
    assert len(source.splitlines()) <= 12
    result = subprocess.run([sys.executable, "-c", source], capture_output=True, text=True,
                            timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["ada", "3", "True"]
