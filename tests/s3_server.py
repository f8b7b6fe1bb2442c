"""A real S3 server for tests: the helpers agentworld ships in `agentworld.testing.s3`."""

from __future__ import annotations

import socket
import threading
from contextlib import suppress
from typing import Any

from agentworld.testing.s3 import (
    AWS_TEST_ENV,
    AWS_UNSET,
    free_port,
    new_bucket,
    s3_client,
    start_s3_server,
    use_test_credentials,
)

__all__ = ["AWS_TEST_ENV", "AWS_UNSET", "CuttingProxy", "free_port", "new_bucket", "s3_client",
           "start_s3_server", "use_test_credentials"]


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
