"""The guest SDKs' modules, built from source once per test session (guest-sdk/build.py).

A missing toolchain fails the tests that need it, naming the install script: these tests never
skip, so CI (which runs the script first) always builds and runs every SDK module.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
LANGUAGES = ("c", "rust")

_built: dict[str, bytes] = {}


def build_module() -> ModuleType:
    """guest-sdk/build.py, imported from its path."""
    path = ROOT / "guest-sdk" / "build.py"
    spec = importlib.util.spec_from_file_location("guest_sdk_build", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def sdk_modules(factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Every SDK module's bytes by name (`c/counter`, `rust/probe`, ...), built once."""
    if not _built:
        build = build_module()
        try:
            paths = build.build_all(factory.mktemp("guest-sdk"))
        except build.ToolchainMissing as exc:
            pytest.fail(str(exc))
        _built.update({name: path.read_bytes() for name, path in paths.items()})
    return _built


def sdk_paths(factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every SDK module written to a file (for the CLI), by name."""
    folder = factory.getbasetemp() / "guest-sdk-files"
    folder.mkdir(exist_ok=True)
    paths = {}
    for name, wasm in sdk_modules(factory).items():
        path = folder / f"{name.replace('/', '-')}.wasm"
        if not path.exists():
            path.write_bytes(wasm)
        paths[name] = path
    return paths
