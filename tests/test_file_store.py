"""The `file` module store on a real filesystem: layout, verification, crash safety, concurrency."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import pytest

from agentworld.errors import StoreError
from agentworld.manager import PluginManager
from agentworld.plugins import file_store
from agentworld.plugins.file_store import FileStore


def sha(data: bytes) -> str:
    """Hex SHA-256 of `data`."""
    return hashlib.sha256(data).hexdigest()


def open_file_store(uri: str) -> FileStore:
    """Open `uri` through a plugin manager that holds only the file-store plugin."""
    manager = PluginManager(builtins=False, entrypoints=False)
    manager.register(file_store, name="file-store")
    store = manager.open_store(uri)
    assert isinstance(store, FileStore)
    return store


def temp_files(root: Path) -> list[Path]:
    """Temp files a writer left under `root`."""
    return sorted(path for path in root.rglob(".*") if path.is_file())


def test_uri_forms_name_the_same_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "with space" / "store"
    first = open_file_store(str(root))
    first.put_blob(sha(b"a"), b"a")
    monkeypatch.chdir(tmp_path)
    for uri in [
        f"file://{root}",
        f"file://localhost{root}",
        "file://" + str(root).replace(" ", "%20"),
        "with space/store",
    ]:
        store = open_file_store(uri)
        assert store.root == root
        assert store.get_blob(sha(b"a")) == b"a"


@pytest.mark.parametrize(
    "uri", ["file://otherhost/srv/store", "file://relative", "file:///srv/store?x=1"]
)
def test_unsupported_file_uris_are_refused(uri: str) -> None:
    with pytest.raises(StoreError, match="file store URI"):
        open_file_store(uri)


def test_layout_on_disk(tmp_path: Path) -> None:
    store = open_file_store(f"file://{tmp_path}")
    store.put_blob(sha(b"\x00asm"), b"\x00asm")
    store.put_manifest("counter", "1.2.0+build.3", b'{"module_id":"counter"}')
    store.write_registry(b'{"modules":{}}')
    assert (tmp_path / "blobs" / "sha256" / sha(b"\x00asm")).read_bytes() == b"\x00asm"
    manifest = tmp_path / "manifests" / "counter" / "1.2.0+build.3.json"
    assert manifest.read_bytes() == b'{"module_id":"counter"}'
    assert (tmp_path / "registry.json").read_bytes() == b'{"modules":{}}'
    assert temp_files(tmp_path) == []


def test_written_files_follow_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        store = open_file_store(str(tmp_path))
        store.put_blob(sha(b"shared"), b"shared")
        store.write_registry(b"{}")
    finally:
        os.umask(previous)
    assert (tmp_path / "blobs" / "sha256" / sha(b"shared")).stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "registry.json").stat().st_mode & 0o777 == 0o644


def test_opening_a_missing_directory_reads_as_empty(tmp_path: Path) -> None:
    store = open_file_store(str(tmp_path / "not-yet"))
    assert store.list_blobs() == []
    assert store.list_manifests() == []
    assert store.read_registry() is None
    assert not (tmp_path / "not-yet").exists()


def test_tampered_blob_is_refused_naming_hash_and_path(tmp_path: Path) -> None:
    store = open_file_store(str(tmp_path))
    data = b"\x00asm original"
    store.put_blob(sha(data), data)
    path = tmp_path / "blobs" / "sha256" / sha(data)
    path.write_bytes(b"\x00asm tampered")
    with pytest.raises(StoreError) as refused:
        store.get_blob(sha(data))
    assert sha(data) in str(refused.value)
    assert str(path) in str(refused.value)
    # Putting the genuine bytes again repairs the store.
    store.put_blob(sha(data), data)
    assert store.get_blob(sha(data)) == data


def test_put_of_existing_verified_bytes_does_not_rewrite(tmp_path: Path) -> None:
    store = open_file_store(str(tmp_path))
    data = b"\x00asm stable"
    store.put_blob(sha(data), data)
    before = (tmp_path / "blobs" / "sha256" / sha(data)).stat()
    store.put_blob(sha(data), data)
    after = (tmp_path / "blobs" / "sha256" / sha(data)).stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_unsafe_keys_write_nothing_anywhere(tmp_path: Path) -> None:
    root = tmp_path / "store"
    store = open_file_store(str(root))
    for bad in ["../evil", "..", "/tmp/evil", "a/b"]:
        with pytest.raises(StoreError):
            store.put_manifest(bad, "1.0.0", b"{}")
        with pytest.raises(StoreError):
            store.put_manifest("module", bad, b"{}")
    assert sorted(tmp_path.rglob("*")) == []


def test_filesystem_errors_become_store_errors_naming_the_path(tmp_path: Path) -> None:
    root = tmp_path / "a-file"
    root.write_bytes(b"not a directory")
    store = open_file_store(str(root))
    with pytest.raises(StoreError, match=str(root)):
        store.put_blob(sha(b"x"), b"x")
    with pytest.raises(StoreError, match=str(root)):
        store.write_registry(b"{}")


def test_leftover_temp_files_are_never_visible(tmp_path: Path) -> None:
    store = open_file_store(str(tmp_path))
    data = b"\x00asm complete"
    blob_dir = tmp_path / "blobs" / "sha256"
    manifest_dir = tmp_path / "manifests" / "m"
    for directory in (blob_dir, manifest_dir):
        directory.mkdir(parents=True)
    # Exactly what a writer killed between write and rename leaves behind.
    for directory, name, partial in [
        (blob_dir, sha(data), data[:5]),
        (manifest_dir, "1.0.0.json", b'{"trunc'),
        (tmp_path, "registry.json", b'{"trunc'),
    ]:
        fd, _ = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
        os.write(fd, partial)
        os.close(fd)
    assert store.list_blobs() == []
    assert not store.has_blob(sha(data))
    with pytest.raises(StoreError, match="no blob"):
        store.get_blob(sha(data))
    assert store.list_manifests() == []
    assert store.read_registry() is None
    store.put_blob(sha(data), data)
    assert store.get_blob(sha(data)) == data


WRITER = textwrap.dedent(
    """
    import hashlib, json, os, sys
    from agentworld.plugins.file_store import FileStore

    store = FileStore(sys.argv[1])
    print("ready", flush=True)
    n = 0
    while True:
        data = os.urandom(512 * 1024)
        store.put_blob(hashlib.sha256(data).hexdigest(), data)
        store.write_registry(json.dumps({"n": n, "pad": "x" * 100_000}).encode())
        n += 1
    """
)


def test_writer_killed_mid_write_leaves_only_whole_files(tmp_path: Path) -> None:
    for delay in (0.05, 0.15, 0.3):
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE
        )
        assert writer.stdout is not None
        assert writer.stdout.readline() == b"ready\n"
        time.sleep(delay)
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        assert writer.stdout.read() == b""
        writer.stdout.close()
        store = open_file_store(str(tmp_path))
        for wasm_hash in store.list_blobs():
            store.get_blob(wasm_hash)  # raises if a partial file became visible
        registry = store.read_registry()
        if registry is not None:
            assert json.loads(registry)["pad"] == "x" * 100_000
    assert open_file_store(str(tmp_path)).list_blobs()


def test_concurrent_threads_writing_the_same_blobs_are_harmless(tmp_path: Path) -> None:
    store = open_file_store(str(tmp_path))
    blobs = [shared_blob(index) for index in range(20)]
    start = threading.Barrier(12)
    failures: list[BaseException] = []

    def write_and_read() -> None:
        start.wait()
        try:
            for data in blobs:
                store.put_blob(sha(data), data)
                assert store.get_blob(sha(data)) == data
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=write_and_read) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert store.list_blobs() == sorted(sha(data) for data in blobs)
    assert temp_files(tmp_path) == []


def shared_blob(index: int) -> bytes:
    """The `index`-th of the blobs every concurrent writer stores (128 KiB, deterministic)."""
    return hashlib.sha256(str(index).encode()).digest() * 4096


SAME_BLOBS_WRITER = textwrap.dedent(
    """
    import hashlib, sys, time
    from pathlib import Path
    from agentworld.plugins.file_store import FileStore

    root, go, count = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    store = FileStore(root)
    print("ready", flush=True)
    while not go.exists():
        time.sleep(0.001)
    for index in range(count):
        data = hashlib.sha256(str(index).encode()).digest() * 4096
        wasm_hash = hashlib.sha256(data).hexdigest()
        store.put_blob(wasm_hash, data)
        assert store.get_blob(wasm_hash) == data
    """
)


def test_concurrent_processes_writing_the_same_blobs_are_harmless(tmp_path: Path) -> None:
    root = tmp_path / "store"
    go = tmp_path / "go"
    count = 30
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", SAME_BLOBS_WRITER, str(root), str(go), str(count)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(4)
    ]
    # Release the writers together once all are loaded, so they race for the same blob files.
    for writer in writers:
        assert writer.stdout is not None
        assert writer.stdout.readline() == b"ready\n"
    go.touch()
    for writer in writers:
        _, stderr = writer.communicate(timeout=60)
        assert writer.returncode == 0, stderr.decode()
    store = open_file_store(str(root))
    expected = [shared_blob(index) for index in range(count)]
    assert store.list_blobs() == sorted(sha(data) for data in expected)
    for data in expected:
        assert store.get_blob(sha(data)) == data
    assert temp_files(root) == []


def test_a_blob_linked_to_a_huge_sparse_file_is_refused_by_size_not_read(tmp_path: Path) -> None:
    store = open_file_store(str(tmp_path / "store"))
    data = b"\0asm genuine"
    store.put_blob(sha(data), data)
    blob = store.blob_path(sha(data))
    huge = tmp_path / "huge.bin"
    with open(huge, "wb") as handle:
        handle.truncate(40 * 1024**3)  # 40 GiB, sparse: reading it would exhaust memory
    blob.unlink()
    blob.symlink_to(huge)
    with pytest.raises(StoreError, match=f"blob {sha(data)} .* symbolic link"):
        store.get_blob(sha(data))
    blob.unlink()
    os.link(huge, blob)  # a hard link is the store's own file, but far too large for a blob
    with pytest.raises(StoreError, match=f"blob {sha(data)} .* bytes, more than a store keeps"):
        store.get_blob(sha(data))
    assert store.has_blob(sha(data))
    store.put_blob(sha(data), data)  # the genuine bytes replace it (never read it)
    assert store.get_blob(sha(data)) == data and huge.stat().st_size == 40 * 1024**3


def test_blobs_never_lead_outside_the_store(tmp_path: Path) -> None:
    store = open_file_store(str(tmp_path / "store"))
    data = b"\0asm outside"
    outside = tmp_path / "outside"
    (outside / "sha256").mkdir(parents=True)
    (outside / "sha256" / sha(data)).write_bytes(data)
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "blobs").symlink_to(outside)
    with pytest.raises(StoreError, match="leads outside the store"):
        store.get_blob(sha(data))
    with pytest.raises(StoreError, match="leads outside the store"):
        store.put_blob(sha(data), data)
    fifo = tmp_path / "store2" / "blobs" / "sha256" / sha(data)
    fifo.parent.mkdir(parents=True)
    os.mkfifo(fifo)
    with pytest.raises(StoreError, match="not a regular file"):
        open_file_store(str(tmp_path / "store2")).get_blob(sha(data))
