"""A real S3 server for tests: moto's `ThreadedMotoServer` on a free local port.

Needs the `moto[server]` and `boto3` packages (both in agentworld's `test` extra). Nothing here
reaches a real AWS account: `use_test_credentials` sets fake credentials and hides any
configuration the developer's shell or `~/.aws` holds.
"""

from __future__ import annotations

import functools
import importlib
import socket
import uuid
from typing import Any

import pytest

AWS_TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_CONFIG_FILE": "/nonexistent/agentworld-test/config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/agentworld-test/credentials",
}
"""Environment that points boto3 at fake credentials and no configuration files."""

AWS_UNSET = (
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
)
"""Environment variables that could steer boto3 towards a real account or endpoint."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_s3_server(port: int | None = None) -> tuple[Any, str]:
    """Start an S3 server on `port` (default: a free one); return it and its endpoint URL.

    Stop it with `server.stop()`.
    """
    from moto.server import ThreadedMotoServer

    port = free_port() if port is None else port
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    return server, f"http://127.0.0.1:{port}"


def use_test_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Point boto3 at fake credentials and away from any real AWS configuration."""
    for name in AWS_UNSET:
        monkeypatch.delenv(name, raising=False)
    for name, value in AWS_TEST_ENV.items():
        monkeypatch.setenv(name, value)


@functools.cache
def s3_client(endpoint: str) -> Any:
    """A plain boto3 client for the test server, to inspect or tamper with objects directly."""
    # boto3 ships no type information: import it by name, as the s3 store plugin does.
    boto3 = importlib.import_module("boto3")
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=AWS_TEST_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=AWS_TEST_ENV["AWS_SECRET_ACCESS_KEY"],
    )


def new_bucket(endpoint: str, *, versioned: bool = False) -> str:
    """Create a uniquely named bucket on the test server and return its name."""
    name = f"test-{uuid.uuid4().hex[:16]}"
    client = s3_client(endpoint)
    client.create_bucket(Bucket=name)
    if versioned:
        client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return name
