"""A world whose module store is S3 (SPEC §8, §10): saved to a directory that holds no module
bytes, then resumed by another process that fetches its artifacts from a real S3 server."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentworld import World
from agentworld.persistence import CorruptArtifactError
from agentworld.testing.guests import guest_wasm
from s3_server import (
    AWS_TEST_ENV,
    AWS_UNSET,
    new_bucket,
    s3_client,
    start_s3_server,
    use_test_credentials,
)
from worldkit import counter_value, deploy, install, manifest, world_with_agents

TESTS = Path(__file__).parent


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    server, url = start_s3_server()
    yield url
    server.stop()


@pytest.fixture
def store_uri(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    use_test_credentials(monkeypatch)
    return f"s3://{new_bucket(endpoint)}/worlds/alpha?endpoint_url={endpoint}&region=us-east-1"


def child_env() -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if name not in AWS_UNSET}
    env.update(AWS_TEST_ENV)
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])
    return env


def test_another_process_resumes_an_s3_backed_world(tmp_path: Path, store_uri: str) -> None:
    world = world_with_agents("ada", "bob", store=store_uri)
    counter = deploy(world, guest_wasm("counter"))
    install(world, "ada", manifest("m.counter", counter))
    install(world, "bob", manifest("m.counter", counter))
    for _ in range(3):
        world.step_with_modules()
    world.save_to_dir(tmp_path / "w")
    assert not (tmp_path / "w" / "modules").exists()

    result = subprocess.run([sys.executable, "-c", textwrap.dedent("""
        import sys
        from agentworld import World
        world = World.load_from_dir(sys.argv[1])
        assert world.store.uri.startswith("s3://"), world.store.uri
        assert world.missing_artifacts() == [], world.missing_artifacts()
        world.step_with_modules()
        print(world.state_root())
    """), str(tmp_path / "w")], capture_output=True, text=True, timeout=120, env=child_env())
    assert result.returncode == 0, result.stderr
    before = counter_value(world, "m.counter#1")
    world.step_with_modules()
    assert counter_value(world, "m.counter#1") == before + 1
    assert result.stdout.strip() == world.state_root()


def test_tampered_s3_artifact_is_refused_naming_hash_and_key(
    tmp_path: Path, store_uri: str, endpoint: str
) -> None:
    world = world_with_agents("ada", store=store_uri)
    counter = deploy(world, guest_wasm("counter"))
    world.save_to_dir(tmp_path / "w")
    bucket = store_uri.split("/")[2]
    key = f"worlds/alpha/blobs/sha256/{counter}"
    s3_client(endpoint).put_object(Bucket=bucket, Key=key, Body=b"\0asm tampered")
    with pytest.raises(CorruptArtifactError) as caught:
        World.load_from_dir(tmp_path / "w")
    assert counter in str(caught.value) and key in str(caught.value)
