"""The `s3` module store against a real S3 server process: layout, integrity, outages, options."""

from __future__ import annotations

import hashlib
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from agentworld.errors import StoreError
from agentworld.manager import PluginManager
from agentworld.plugins import s3_store
from agentworld.plugins.s3_store import S3Store, parse_s3_uri
from s3_server import free_port, new_bucket, s3_client, start_s3_server, use_test_credentials

# A dead endpoint must be reported within a few seconds (connection refused, bounded retries).
OUTAGE_BUDGET_S = 8.0


def sha(data: bytes) -> str:
    """Hex SHA-256 of `data`."""
    return hashlib.sha256(data).hexdigest()


def open_s3_store(uri: str) -> S3Store:
    """Open `uri` through a plugin manager that holds only the s3-store plugin."""
    manager = PluginManager(builtins=False, entrypoints=False)
    manager.register(s3_store, name="s3-store")
    store = manager.open_store(uri)
    assert isinstance(store, S3Store)
    return store


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    server, url = start_s3_server()
    yield url
    server.stop()


@pytest.fixture
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    use_test_credentials(monkeypatch)


@pytest.fixture
def bucket(endpoint: str, credentials: None) -> str:
    return new_bucket(endpoint, versioned=True)


def test_round_trip_uses_the_file_layout_under_the_prefix(endpoint: str, bucket: str) -> None:
    store = open_s3_store(f"s3://{bucket}/team/world-1?endpoint_url={endpoint}&region=us-east-1")
    data = b"\x00asm module"
    store.put_blob(sha(data), data)
    store.put_manifest("counter", "1.0.0+b.2", b'{"module_id":"counter"}')
    store.write_registry(b'{"modules":{}}')
    client = s3_client(endpoint)
    listed = client.list_objects_v2(Bucket=bucket)["Contents"]
    assert sorted(item["Key"] for item in listed) == [
        f"team/world-1/blobs/sha256/{sha(data)}",
        "team/world-1/manifests/counter/1.0.0+b.2.json",
        "team/world-1/registry.json",
    ]
    assert store.get_blob(sha(data)) == data
    assert store.get_manifest("counter", "1.0.0+b.2") == b'{"module_id":"counter"}'
    assert store.read_registry() == b'{"modules":{}}'
    assert store.list_blobs() == [sha(data)]
    assert store.list_manifests() == [("counter", "1.0.0+b.2")]


def versions(endpoint: str, bucket: str, key: str) -> int:
    """How many object versions the (versioned) bucket holds for `key`."""
    listing = s3_client(endpoint).list_object_versions(Bucket=bucket, Prefix=key)
    return len(listing.get("Versions", []))


def test_putting_an_existing_blob_writes_nothing(endpoint: str, bucket: str) -> None:
    store = open_s3_store(f"s3://{bucket}?endpoint_url={endpoint}")
    data = b"\x00asm once"
    for _ in range(3):
        store.put_blob(sha(data), data)
    assert versions(endpoint, bucket, store.blob_key(sha(data))) == 1


def test_object_overwritten_behind_the_store_is_refused(endpoint: str, bucket: str) -> None:
    store = open_s3_store(f"s3://{bucket}/p?endpoint_url={endpoint}")
    data = b"\x00asm genuine"
    store.put_blob(sha(data), data)
    key = store.blob_key(sha(data))
    s3_client(endpoint).put_object(Bucket=bucket, Key=key, Body=b"\x00asm evil")
    with pytest.raises(StoreError) as refused:
        store.get_blob(sha(data))
    message = str(refused.value)
    assert bucket in message and key in message and "fails verification" in message
    # The genuine bytes repair it: the conditional put finds a bad object and replaces it.
    store.put_blob(sha(data), data)
    assert store.get_blob(sha(data)) == data
    assert versions(endpoint, bucket, key) == 3


def test_missing_bucket_is_a_clear_error(endpoint: str, credentials: None) -> None:
    store = open_s3_store(f"s3://no-such-bucket-here/p?endpoint_url={endpoint}")
    with pytest.raises(StoreError, match=r"no-such-bucket-here.*NoSuchBucket"):
        store.put_blob(sha(b"x"), b"x")


def test_missing_credentials_are_a_clear_error(
    endpoint: str, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    store = open_s3_store(f"s3://{bucket}?endpoint_url={endpoint}")
    with pytest.raises(StoreError, match="no usable AWS credentials"):
        store.read_registry()


def test_server_outage_fails_fast_corrupts_nothing_and_recovers(credentials: None) -> None:
    server, url = start_s3_server()
    try:
        bucket = new_bucket(url)
        store = open_s3_store(f"s3://{bucket}/w?endpoint_url={url}")
        written: list[bytes] = []
        failure: list[StoreError] = []
        writing = threading.Event()

        def writer() -> None:
            try:
                while True:
                    data = os.urandom(64 * 1024)
                    store.put_blob(sha(data), data)
                    written.append(data)
                    store.write_registry(sha(data).encode())
                    writing.set()
            except StoreError as exc:
                failure.append(exc)

        thread = threading.Thread(target=writer)
        thread.start()
        assert writing.wait(10)
        server.stop()  # mid-operation: the writer is somewhere in a put
        stopped = time.monotonic()
        thread.join(OUTAGE_BUDGET_S * 2)
        assert not thread.is_alive()
        assert time.monotonic() - stopped < OUTAGE_BUDGET_S
        assert failure and url in str(failure[0]) and bucket in str(failure[0])

        absent = b"\x00asm while down"
        for operation, key in [
            (lambda: store.put_blob(sha(absent), absent), store.blob_key(sha(absent))),
            (lambda: store.get_blob(sha(written[0])), store.blob_key(sha(written[0]))),
            (lambda: store.has_blob(sha(absent)), store.blob_key(sha(absent))),
            (store.list_blobs, "w/blobs/sha256/"),
            (store.read_registry, "w/registry.json"),
        ]:
            started = time.monotonic()
            with pytest.raises(StoreError, match="endpoint unreachable") as refused:
                operation()
            assert time.monotonic() - started < OUTAGE_BUDGET_S
            for name in (url, f"bucket {bucket!r}", f"key {key!r}"):
                assert name in str(refused.value)

        server, _ = start_s3_server(int(url.rsplit(":", 1)[1]))
        # Every blob that became visible is whole and verified; the failed put left nothing.
        listed = store.list_blobs()
        assert set(map(sha, written)) <= set(listed)
        for wasm_hash in listed:
            store.get_blob(wasm_hash)
        assert not store.has_blob(sha(absent))
        assert store.read_registry() in {sha(data).encode() for data in written}
        store.put_blob(sha(absent), absent)
        assert store.get_blob(sha(absent)) == absent
    finally:
        server.stop()


def test_outage_error_names_endpoint_bucket_and_key(credentials: None) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    store = open_s3_store(f"s3://some-bucket/pre?endpoint_url={url}")
    wasm_hash = sha(b"x")
    started = time.monotonic()
    with pytest.raises(StoreError) as refused:
        store.get_blob(wasm_hash)
    assert time.monotonic() - started < OUTAGE_BUDGET_S
    message = str(refused.value)
    assert url in message
    assert "'some-bucket'" in message
    assert f"'pre/blobs/sha256/{wasm_hash}'" in message


def test_an_endpoint_that_never_answers_times_out(credentials: None) -> None:
    # Accepts connections and never replies: only the read timeout can end the request.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        store = open_s3_store(
            f"s3://quiet-bucket?endpoint_url={url}&read_timeout=0.3&connect_timeout=0.3"
            "&max_attempts=2"
        )
        started = time.monotonic()
        with pytest.raises(StoreError, match="endpoint unreachable or not answering"):
            store.read_registry()
        assert time.monotonic() - started < 4.0


def test_missing_boto3_keeps_the_scheme_and_explains(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)  # makes `import boto3` raise ImportError
    manager = PluginManager(builtins=False, entrypoints=False)
    manager.register(s3_store, name="s3-store")
    assert "s3" in manager.stores()
    with pytest.raises(StoreError, match=r"install agentworld\[s3\]"):
        manager.open_store("s3://bucket-name/prefix")


def test_uri_options_are_parsed() -> None:
    options = parse_s3_uri(
        "s3://my-bucket/a/b/?endpoint_url=http://127.0.0.1:9000&region=eu-west-1"
        "&connect_timeout=1.5&read_timeout=3&max_attempts=5&addressing_style=path"
    )
    assert options.bucket == "my-bucket"
    assert options.prefix == "a/b"
    assert options.endpoint_url == "http://127.0.0.1:9000"
    assert options.region == "eu-west-1"
    assert (options.connect_timeout, options.read_timeout, options.max_attempts) == (1.5, 3.0, 5)
    assert options.addressing_style == "path"
    assert parse_s3_uri("s3://my-bucket").prefix == ""


@pytest.mark.parametrize(
    ("uri", "problem"),
    [
        ("s3:///prefix", "not an s3 store URI"),
        ("s3://Bad_Bucket/p", "invalid bucket name"),
        ("s3://my-bucket/a/../b", "prefix may not contain"),
        ("s3://my-bucket/p?endpoint=http://x", "unknown option"),
        ("s3://my-bucket/p?region=a&region=b", "given twice"),
        ("s3://my-bucket/p?max_attempts=0", "positive"),
        ("s3://my-bucket/p?max_attempts=1.5", "whole number"),
        ("s3://my-bucket/p?read_timeout=nan", "positive"),
        ("s3://my-bucket/p?addressing_style=weird", "addressing_style"),
    ],
)
def test_bad_uris_are_refused(uri: str, problem: str) -> None:
    with pytest.raises(StoreError, match=problem):
        parse_s3_uri(uri)


def test_region_comes_from_uri_then_environment_then_default(
    credentials: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert open_s3_store("s3://my-bucket").region == "us-east-1"
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-central-1")
    assert open_s3_store("s3://my-bucket").region == "eu-central-1"
    assert open_s3_store("s3://my-bucket?region=ap-south-1").region == "ap-south-1"


def test_client_configuration_errors_are_store_errors(
    credentials: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(StoreError, match=r"cannot configure the S3 client.*notaurl"):
        open_s3_store("s3://my-bucket?endpoint_url=notaurl")
    monkeypatch.setenv("AWS_PROFILE", "no-such-profile")
    with pytest.raises(StoreError, match=r"cannot configure the S3 client.*no-such-profile"):
        open_s3_store("s3://my-bucket")
