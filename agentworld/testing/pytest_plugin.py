"""pytest fixtures for people who write agentworld plugins and modules.

Installed with agentworld and loaded by pytest through the `pytest11` entry point, so the
fixtures are there in any test run without a conftest import:

- `agentworld_plugins`: a fresh `PluginManager` with the built-in plugins only; register yours
  on it. It never loads the `agentworld` entry points installed in the environment, so a test
  sees exactly the plugins it registers (disable this plugin with `-p no:agentworld`).
- `agentworld_world`: a fresh `World` on that manager (wasmtime executor, in-memory store).
- `agentworld_wat`: a function compiling WebAssembly text to module bytes.
- `agentworld_s3_uri`: an `s3://` store URI on a new, empty bucket of a local moto server,
  with fake credentials; the test is skipped when moto is not installed.

Importing this module loads no plugin and starts nothing; each fixture does its work when used.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from agentworld.manager import PluginManager
from agentworld.world import World


@pytest.fixture
def agentworld_plugins() -> PluginManager:
    """A fresh plugin manager: built-in plugins, no entry points, no environment controls."""
    return PluginManager(entrypoints=False, environ={})


@pytest.fixture
def agentworld_world(agentworld_plugins: PluginManager) -> World:
    """A fresh world (no agents) on the `agentworld_plugins` manager."""
    return World(plugins=agentworld_plugins)


@pytest.fixture
def agentworld_wat() -> Callable[[str], bytes]:
    """A function compiling WebAssembly text (WAT) to module bytes; bad text fails the test
    with the compiler's message."""
    import wasmtime

    def compile_wat(text: str) -> bytes:
        try:
            return bytes(wasmtime.wat2wasm(text))
        except wasmtime.WasmtimeError as exc:
            pytest.fail(f"the WAT does not compile: {exc}", pytrace=False)

    return compile_wat


@pytest.fixture(scope="session")
def agentworld_s3_endpoint() -> Iterator[str]:
    """The endpoint URL of a moto S3 server shared by the session (skipped without moto)."""
    pytest.importorskip("moto.server", reason="agentworld_s3_uri needs moto[server]")
    pytest.importorskip("boto3", reason="agentworld_s3_uri needs boto3")
    from agentworld.testing.s3 import start_s3_server

    server, endpoint = start_s3_server()
    yield endpoint
    server.stop()


@pytest.fixture
def agentworld_s3_uri(agentworld_s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """`s3://BUCKET/store?endpoint_url=...` on a new, empty bucket, with fake credentials."""
    from agentworld.testing.s3 import new_bucket, use_test_credentials

    use_test_credentials(monkeypatch)
    bucket = new_bucket(agentworld_s3_endpoint)
    return f"s3://{bucket}/store?endpoint_url={agentworld_s3_endpoint}"
