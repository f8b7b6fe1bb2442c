"""A world whose module store is S3: saved to a directory that holds no module
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
from agentworld.errors import StoreError, StoreUnavailableError
from agentworld.persistence import CorruptWorldError, verify_dir
from agentworld.testing.guests import guest_wasm
from agentworld.world import event_to_json
from s3_server import (
    AWS_TEST_ENV,
    AWS_UNSET,
    CuttingProxy,
    new_bucket,
    s3_client,
    start_s3_server,
    use_test_credentials,
)
from worldkit import constant_guest, counter_value, deploy, install, manifest, world_with_agents

TESTS = Path(__file__).parent


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    server, url = start_s3_server()
    yield url
    server.stop()


@pytest.fixture
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    use_test_credentials(monkeypatch)


@pytest.fixture
def store_uri(endpoint: str, credentials: None) -> str:
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


def test_tampered_s3_artifact_is_reported_naming_hash_and_key(
    tmp_path: Path, store_uri: str, endpoint: str
) -> None:
    world = world_with_agents("ada", store=store_uri)
    counter = deploy(world, guest_wasm("counter"))
    world.save_to_dir(tmp_path / "w")
    bucket = store_uri.split("/")[2]
    key = f"worlds/alpha/blobs/sha256/{counter}"
    s3_client(endpoint).put_object(Bucket=bucket, Key=key, Body=b"\0asm tampered")
    loaded = World.load_from_dir(tmp_path / "w")
    assert list(loaded.corrupt_artifacts()) == [counter]
    assert key in loaded.corrupt_artifacts()[counter]
    report = verify_dir(tmp_path / "w")
    assert any(counter in problem and key in problem for problem in report.problems)


def test_a_connection_cut_mid_transfer_is_an_outage_not_a_corrupt_artifact(
    tmp_path: Path, endpoint: str, credentials: None
) -> None:
    proxy = CuttingProxy(endpoint, cut_after=8192)
    try:
        bucket = new_bucket(endpoint)
        uri = f"s3://{bucket}/w?endpoint_url={proxy.url}&region=us-east-1&max_attempts=2"
        world = world_with_agents("ada", store=uri)
        # A module big enough that the cut lands in the middle of its body.
        big = deploy(world, constant_guest({"emits": [{"kind": "x", "payload": "y" * 60_000}]}))
        world.save_to_dir(tmp_path / "w")

        proxy.cuts = 1  # one cut: the read is retried and the world loads intact
        assert World.load_from_dir(tmp_path / "w").corrupt_artifacts() == {}

        proxy.cuts = 100  # every attempt cut: an outage, named as one
        with pytest.raises(StoreUnavailableError, match=r"cut mid-transfer|not answering") as cut:
            World.load_from_dir(tmp_path / "w")
        assert not isinstance(cut.value, CorruptWorldError)
        assert "corrupt" not in str(cut.value) and big in str(cut.value)
        report = verify_dir(tmp_path / "w")
        assert not report.ok
        assert [p for p in report.problems if "unavailable" in p] == list(report.problems)
        assert not any("corrupt" in problem for problem in report.problems)
    finally:
        proxy.stop()


@pytest.mark.slow
def test_a_missing_bucket_fails_verify_and_load_clearly(
    tmp_path: Path, store_uri: str, endpoint: str
) -> None:
    world = world_with_agents("ada", store=store_uri)
    deploy(world, guest_wasm("counter"))
    world.save_to_dir(tmp_path / "w")
    bucket = store_uri.split("/")[2]
    client = s3_client(endpoint)
    for item in client.list_objects_v2(Bucket=bucket).get("Contents", []):
        client.delete_object(Bucket=bucket, Key=item["Key"])
    client.delete_bucket(Bucket=bucket)

    report = verify_dir(tmp_path / "w")
    assert not report.ok and report.missing_artifacts == ()
    assert any(f"bucket {bucket!r} does not exist" in p for p in report.problems), report
    with pytest.raises(StoreError, match=f"bucket {bucket!r} does not exist"):
        World.load_from_dir(tmp_path / "w")
    verify = subprocess.run([sys.executable, "-m", "agentworld", "world", "verify",
                             str(tmp_path / "w")], capture_output=True, text=True, timeout=120,
                            env=child_env())
    assert verify.returncode == 1 and "does not exist" in verify.stdout, verify


def _outage_script(world: World) -> None:
    """Two ticking instances of two artifacts; the second one's artifact is installed last."""
    first = deploy(world, guest_wasm("counter"))
    install(world, "ada", manifest("m.first", first))
    world.step_with_modules()  # m.first has been called: its artifact is known to be present
    second = deploy(world, constant_guest({"emits": [{"kind": "second.ticked", "payload": 1}]}))
    install(world, "ada", manifest("m.second", second, kind="pure",
                                   subscriptions=[{"stage": "tick"}]))
    world.submit({"type": "move_agent", "data": {"agent_id": "ada", "to": [3, 4]}})


def test_a_store_outage_mid_step_leaves_the_world_as_before_and_a_retry_gives_the_same_journal(
    credentials: None,
) -> None:
    """The server stops: the step's first calls and its move are done when m.second's artifact
    cannot be looked up. The world must be exactly as before the step, and once the server is
    back the retried step must give the journal of a run that never saw the outage."""
    reference_server, reference_url = start_s3_server()
    try:
        reference = world_with_agents("ada", store=f"s3://{new_bucket(reference_url)}/w?"
                                                   f"endpoint_url={reference_url}")
        _outage_script(reference)
        reference.step_with_modules()
        reference.step_with_modules()
    finally:
        reference_server.stop()

    server, url = start_s3_server()
    port = int(url.rsplit(":", 1)[1])
    world = world_with_agents("ada", store=f"s3://{new_bucket(url)}/w?endpoint_url={url}"
                                           f"&max_attempts=1&connect_timeout=0.5")
    _outage_script(world)
    before = (world.time, len(world.journal), world.state_root(), world.pending_action_ids,
              world.module_state("m.first#1"))
    server.stop()
    try:
        with pytest.raises(StoreUnavailableError):
            world.step_with_modules()
        assert (world.time, len(world.journal), world.state_root(), world.pending_action_ids,
                world.module_state("m.first#1")) == before
    finally:
        server, _ = start_s3_server(port)  # the same server, back: moto keeps its objects
    try:
        world.step_with_modules()
        world.step_with_modules()
    finally:
        server.stop()
    assert [event_to_json(e) for e in world.journal] == [
        event_to_json(e) for e in reference.journal]
    assert world.state_root() == reference.state_root()
