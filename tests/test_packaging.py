"""The built wheel ships one top-level package: `agentworld`, with backends and plugins inside."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_wheel_has_only_the_agentworld_package(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "-w", str(tmp_path), str(ROOT)],
        check=True, capture_output=True, timeout=300,
    )
    (wheel,) = tmp_path.glob("agentworld-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/", 1)[0] for name in names if not name.split("/")[0].endswith(
        (".dist-info", ".data"))}
    assert top_level == {"agentworld"}
    assert "agentworld/backends/wasmtime_executor.py" in names
    assert "agentworld/plugins/memory_store.py" in names
    assert "agentworld/py.typed" in names
    assert not any(name.startswith(("tests/", "benchmarks/", "examples/")) for name in names)
