"""A real S3 server for tests: moto's `ThreadedMotoServer` on a free local port."""

from __future__ import annotations

import functools
import socket
import threading
import uuid
from contextlib import suppress
from typing import Any

import pytest
from moto.server import ThreadedMotoServer

# Fake credentials and no ambient AWS configuration: the tests must never reach a real account,
# whatever the developer's shell or ~/.aws holds.
AWS_TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_CONFIG_FILE": "/nonexistent/agentworld-test/config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/agentworld-test/credentials",
}
AWS_UNSET = (
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_s3_server(port: int | None = None) -> tuple[ThreadedMotoServer, str]:
    """Start an S3 server on `port` (default: a free one); return it and its endpoint URL."""
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
    import boto3

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


class CuttingProxy:
    """A TCP relay in front of an S3 server that cuts blob downloads mid-body.

    While `cuts` is positive, a `GET` of a blob key has its connection closed after
    `cut_after` bytes of the response (headers included), and `cuts` is decremented: a real
    connection cut mid-transfer, as a flaky network gives one.
    """

    def __init__(self, upstream: str, *, cut_after: int = 4096) -> None:
        self._upstream = upstream.removeprefix("http://").rsplit(":", 1)
        self.cut_after = cut_after
        self.cuts = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def stop(self) -> None:
        """Stop accepting connections."""
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            host, port = self._upstream
            upstream = socket.create_connection((host, int(port)))
            state = {"cut": False, "sent": 0}
            threading.Thread(target=self._requests, args=(client, upstream, state),
                             daemon=True).start()
            threading.Thread(target=self._responses, args=(upstream, client, state),
                             daemon=True).start()

    def _requests(self, client: socket.socket, upstream: socket.socket,
                  state: dict[str, Any]) -> None:
        with suppress(OSError):
            while data := client.recv(65536):
                if data.startswith(b"GET ") and b"/blobs/sha256/" in data.split(b"\r\n", 1)[0]:
                    with self._lock:
                        state["cut"], self.cuts = self.cuts > 0, max(0, self.cuts - 1)
                    state["sent"] = 0
                upstream.sendall(data)
        _close(client, upstream)

    def _responses(self, upstream: socket.socket, client: socket.socket,
                   state: dict[str, Any]) -> None:
        with suppress(OSError):
            while data := upstream.recv(65536):
                if state["cut"]:
                    left = self.cut_after - state["sent"]
                    if len(data) >= left:
                        client.sendall(data[:left])
                        break
                    state["sent"] += len(data)
                client.sendall(data)
        _close(client, upstream)


def _close(*sockets: socket.socket) -> None:
    for each in sockets:
        with suppress(OSError):
            each.shutdown(socket.SHUT_RDWR)
        each.close()
