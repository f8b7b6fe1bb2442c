"""The `s3://` module store: the file store's keys under a prefix in an S3-compatible bucket."""

from __future__ import annotations

import importlib
import math
import re
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from attrs import frozen

from agentworld.errors import StoreError, StoreUnavailableError
from agentworld.hookspecs import hookimpl
from agentworld.store import (
    check_blob_size,
    check_hash,
    check_key_part,
    is_hash,
    is_key_part,
    verify_blob,
)

DEFAULT_REGION = "us-east-1"
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_ADDRESSING_STYLES = ("auto", "path", "virtual")
_MANIFEST_SUFFIX = ".json"
_MISSING_KEY_CODES = {"NoSuchKey", "404", "NotFound"}
# Answers that mean "not now" rather than "no": the service is down, overloaded or timing out.
_OUTAGE_CODES = {"InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout",
                 "Throttling", "ThrottlingException", "RequestLimitExceeded"}
_OPTIONS = (
    "addressing_style",
    "connect_timeout",
    "endpoint_url",
    "max_attempts",
    "read_timeout",
    "region",
)


@frozen
class S3Options:
    """Where an `s3://bucket/prefix?option=value` URI points and how to talk to it."""

    bucket: str
    prefix: str = ""
    endpoint_url: str | None = None
    region: str | None = None
    # Short timeouts and few attempts: a dead endpoint must surface as a StoreError within
    # seconds, not stall a world step for minutes.
    connect_timeout: float = 2.0
    read_timeout: float = 5.0
    max_attempts: int = 3
    addressing_style: str = "auto"


def _number(uri: str, options: dict[str, str], name: str, default: float) -> float:
    raw = options.get(name)
    if raw is None:
        return default
    try:
        number = float(raw)
    except ValueError:
        number = 0.0
    if not (math.isfinite(number) and number > 0):
        raise StoreError(f"s3 store URI {uri!r}: {name} must be a positive number, got {raw!r}")
    return number


def parse_s3_uri(uri: str) -> S3Options:
    """Parse `s3://bucket/prefix?endpoint_url=...&region=...` into `S3Options`."""
    parts = urlsplit(uri)
    if parts.scheme != "s3" or not parts.netloc:
        raise StoreError(f"not an s3 store URI (s3://bucket/prefix?options): {uri!r}")
    if not _BUCKET.fullmatch(parts.netloc):
        raise StoreError(f"s3 store URI {uri!r}: invalid bucket name {parts.netloc!r}")
    segments = [segment for segment in parts.path.split("/") if segment]
    for segment in segments:
        if segment in {".", ".."}:
            raise StoreError(f"s3 store URI {uri!r}: prefix may not contain {segment!r}")
    options: dict[str, str] = {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name in options:
            raise StoreError(f"s3 store URI {uri!r}: option {name!r} given twice")
        options[name] = value
    unknown = sorted(set(options) - set(_OPTIONS))
    if unknown:
        raise StoreError(
            f"s3 store URI {uri!r}: unknown option(s) {', '.join(unknown)} "
            f"(known: {', '.join(_OPTIONS)})"
        )
    defaults = S3Options(bucket=parts.netloc)
    style = options.get("addressing_style", defaults.addressing_style)
    if style not in _ADDRESSING_STYLES:
        raise StoreError(
            f"s3 store URI {uri!r}: addressing_style must be one of {_ADDRESSING_STYLES}"
        )
    max_attempts = _number(uri, options, "max_attempts", defaults.max_attempts)
    if max_attempts != int(max_attempts):
        raise StoreError(f"s3 store URI {uri!r}: max_attempts must be a whole number")
    return S3Options(
        bucket=parts.netloc,
        prefix="/".join(segments),
        endpoint_url=options.get("endpoint_url") or None,
        region=options.get("region") or None,
        connect_timeout=_number(uri, options, "connect_timeout", defaults.connect_timeout),
        read_timeout=_number(uri, options, "read_timeout", defaults.read_timeout),
        max_attempts=int(max_attempts),
        addressing_style=style,
    )


def _import(name: str) -> ModuleType:
    # boto3 is the optional `s3` extra: import it only when an s3 store is opened, so the scheme
    # is always registered and a missing install is a clear StoreError, not an ImportError.
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise StoreError(
            f"the s3 module store needs boto3, which is not installed: install agentworld[s3] "
            f"({exc})"
        ) from exc


def _error_code(exc: Any) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _http_status(exc: Any) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


class S3Store:
    """Blobs, manifests and the registry as objects under a prefix in one S3 bucket.

    Blob writes are conditional (`IfNoneMatch="*"`) and every read is verified against the
    SHA-256 in its key. The registry is a plain put: concurrent writers race, the last one wins.
    Transient failures (connection errors, 5xx, throttling) are retried by botocore's `standard`
    mode with exponential backoff, at most `max_attempts` attempts per request.
    """

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.options = parse_s3_uri(uri)
        boto3 = _import("boto3")
        self._exceptions = _import("botocore.exceptions")
        config = _import("botocore.config").Config
        try:
            session = boto3.session.Session()
            # Explicit URI region, else the standard AWS environment/profile, else the default.
            self.region: str = self.options.region or session.region_name or DEFAULT_REGION
            self._client: Any = session.client(
                "s3",
                endpoint_url=self.options.endpoint_url,
                config=config(
                    region_name=self.region,
                    connect_timeout=self.options.connect_timeout,
                    read_timeout=self.options.read_timeout,
                    retries={"total_max_attempts": self.options.max_attempts, "mode": "standard"},
                    s3={"addressing_style": self.options.addressing_style},
                ),
            )
        except (self._exceptions.BotoCoreError, ValueError) as exc:
            # A missing profile, a malformed endpoint URL or region: configuration, not I/O.
            raise StoreError(f"s3 store {uri!r}: cannot configure the S3 client: {exc}") from exc
        self.endpoint: str = self._client.meta.endpoint_url
        self._bucket_seen = False

    # -- keys ---------------------------------------------------------------------------------

    def _key(self, *parts: str) -> str:
        return "/".join([self.options.prefix, *parts] if self.options.prefix else parts)

    def blob_key(self, wasm_hash: str) -> str:
        """The object key holding the bytes of `wasm_hash`."""
        return self._key("blobs", "sha256", check_hash(wasm_hash))

    def manifest_key(self, module_id: str, version: str) -> str:
        """The object key holding manifest `module_id@version`."""
        return self._key(
            "manifests", check_key_part(module_id), check_key_part(version) + _MANIFEST_SUFFIX
        )

    @property
    def registry_key(self) -> str:
        """The object key holding the registry document."""
        return self._key("registry.json")

    def _where(self, key: str) -> str:
        return f"s3://{self.options.bucket}/{key} (endpoint {self.endpoint})"

    # -- requests -----------------------------------------------------------------------------

    def _transport_error(self, key: str, exc: Exception) -> StoreError:
        errors = self._exceptions
        bucket = self.options.bucket
        where = f"endpoint {self.endpoint}, bucket {bucket!r}, key {key!r}: {exc}"
        if isinstance(exc, (errors.NoCredentialsError, errors.PartialCredentialsError)):
            problem = "no usable AWS credentials (set AWS_ACCESS_KEY_ID and friends, or a profile)"
        elif isinstance(
            exc, (errors.ConnectionError, errors.HTTPClientError, errors.IncompleteReadError)
        ):
            return StoreUnavailableError(
                f"s3 store: endpoint unreachable or not answering (an outage: the data is not "
                f"known to be bad): {where}")
        else:
            problem = "request failed"
        return StoreError(f"s3 store: {problem}: {where}")

    def _request_error(self, operation: str, key: str, exc: Any) -> StoreError:
        code = _error_code(exc)
        reason = f"{code} {exc.response.get('Error', {}).get('Message', '')}".strip()
        if code in _OUTAGE_CODES or _http_status(exc) >= 500:
            return StoreUnavailableError(
                f"s3 store: {operation} {self._where(key)} failed: the service is unavailable "
                f"(an outage, not bad data): {reason}")
        return StoreError(f"s3 store: {operation} {self._where(key)} failed: {reason}")

    def _cut_transfer(self, key: str, received: int, expected: int) -> StoreError:
        return StoreUnavailableError(
            f"s3 store: the connection was cut mid-transfer (an outage, not bad data): "
            f"{self._where(key)}: received {received} of {expected} bytes")

    def _check_bucket(self, key: str) -> None:
        """Raise unless the bucket exists: a HEAD of a key answers 404 for a missing bucket too,
        which must not pass for "no such artifact"."""
        if self._bucket_seen:
            return
        try:
            self._client.head_bucket(Bucket=self.options.bucket)
        except self._exceptions.ClientError as exc:
            if _error_code(exc) in {"404", "NoSuchBucket", "NotFound"}:
                raise StoreError(
                    f"s3 store: bucket {self.options.bucket!r} does not exist at endpoint "
                    f"{self.endpoint} (create it first; the store never creates buckets)"
                ) from exc
            raise self._request_error("head bucket", key, exc) from exc
        except self._exceptions.BotoCoreError as exc:
            raise self._transport_error(key, exc) from exc
        self._bucket_seen = True

    def _call(self, operation: str, key: str, **params: Any) -> Any:
        """Run one S3 operation on `key`; a ClientError escapes for the caller to inspect."""
        try:
            return getattr(self._client, operation)(Bucket=self.options.bucket, Key=key, **params)
        except self._exceptions.BotoCoreError as exc:
            raise self._transport_error(key, exc) from exc

    def _get(self, key: str, *, blob: str | None = None) -> bytes | None:
        """The object's bytes, or None when the key does not exist.

        For a blob (`blob` is its hash) the announced size is checked before the body is read.
        A body shorter than announced is a cut connection, retried like one, never handed on
        as if it were the object (it would read as corrupt data).
        """
        attempt = 1
        while True:
            try:
                response = self._call("get_object", key)
            except self._exceptions.ClientError as exc:
                if _error_code(exc) in _MISSING_KEY_CODES:
                    return None
                raise self._request_error("get", key, exc) from exc
            expected = response.get("ContentLength")
            if blob is not None and isinstance(expected, int):
                try:
                    check_blob_size(expected, blob, self._where(key))
                except StoreError:
                    response["Body"].close()
                    raise
            try:
                data = bytes(response["Body"].read())
                if not isinstance(expected, int) or len(data) == expected:
                    return data
                failure = self._cut_transfer(key, len(data), expected)
            except self._exceptions.BotoCoreError as exc:
                # botocore retries the request, not the streaming of its body: a connection cut
                # mid-body is retried here, within the same attempt budget.
                failure = self._transport_error(key, exc)
            if attempt >= self.options.max_attempts:
                raise failure
            attempt += 1

    def _put(self, key: str, data: bytes) -> None:
        try:
            self._call("put_object", key, Body=data)
        except self._exceptions.ClientError as exc:
            raise self._request_error("put", key, exc) from exc

    def _list(self, under: str) -> Iterator[str]:
        prefix = self._key(under) + "/"
        try:
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.options.bucket, Prefix=prefix
            )
            for page in pages:
                for item in page.get("Contents", []):
                    yield str(item["Key"])[len(prefix) :]
        except self._exceptions.ClientError as exc:
            raise self._request_error("list", prefix, exc) from exc
        except self._exceptions.BotoCoreError as exc:
            raise self._transport_error(prefix, exc) from exc

    # -- the ModuleStore contract -------------------------------------------------------------

    def put_blob(self, wasm_hash: str, data: bytes) -> None:
        """Store `data` under its verified SHA-256; existing verified bytes are left untouched."""
        key = self.blob_key(wasm_hash)
        data = verify_blob(bytes(data), wasm_hash)
        check_blob_size(len(data), wasm_hash)
        try:
            self._call("put_object", key, Body=data, IfNoneMatch="*")
            return
        except self._exceptions.ClientError as exc:
            # 412: the key exists; 409: a concurrent conditional write of it is in flight.
            if _http_status(exc) not in {409, 412}:
                raise self._request_error("put", key, exc) from exc
        try:
            existing = self._get(key, blob=wasm_hash)
        except StoreUnavailableError:
            raise
        except StoreError:
            existing = None  # oversized: replaced below
        if existing == data:
            return
        # Absent again, or overwritten behind our back: an unconditional put is safe because the
        # key is content-addressed, so every writer of it writes exactly these verified bytes.
        self._put(key, data)

    def get_blob(self, wasm_hash: str) -> bytes:
        """Return the verified bytes for `wasm_hash`."""
        key = self.blob_key(wasm_hash)
        data = self._get(key, blob=wasm_hash)
        if data is None:
            raise StoreError(f"s3 store: no blob {wasm_hash} at {self._where(key)}")
        return verify_blob(data, wasm_hash, where=self._where(key))

    def has_blob(self, wasm_hash: str) -> bool:
        """True when an object for `wasm_hash` exists."""
        key = self.blob_key(wasm_hash)
        try:
            self._call("head_object", key)
        except self._exceptions.ClientError as exc:
            if _error_code(exc) in _MISSING_KEY_CODES:
                self._check_bucket(key)
                return False
            raise self._request_error("head", key, exc) from exc
        return True

    def list_blobs(self) -> list[str]:
        """The hash of every stored blob, sorted."""
        return sorted(name for name in self._list("blobs/sha256") if is_hash(name))

    def put_manifest(self, module_id: str, version: str, manifest_json: bytes) -> None:
        """Store manifest `module_id@version`."""
        self._put(self.manifest_key(module_id, version), bytes(manifest_json))

    def get_manifest(self, module_id: str, version: str) -> bytes:
        """Return manifest `module_id@version`."""
        key = self.manifest_key(module_id, version)
        data = self._get(key)
        if data is None:
            raise StoreError(f"s3 store: no manifest {module_id}@{version} at {self._where(key)}")
        return data

    def list_manifests(self) -> list[tuple[str, str]]:
        """Every stored `(module_id, version)`, sorted."""
        found = []
        for name in self._list("manifests"):
            module_id, _, file_name = name.partition("/")
            version = file_name.removesuffix(_MANIFEST_SUFFIX)
            if (
                file_name.endswith(_MANIFEST_SUFFIX)
                and is_key_part(module_id)
                and is_key_part(version)
            ):
                found.append((module_id, version))
        return sorted(found)

    def read_registry(self) -> bytes | None:
        """The registry document, or None if never written."""
        return self._get(self.registry_key)

    def write_registry(self, document: bytes) -> None:
        """Replace the registry document (one PUT: atomic; concurrent writers, last one wins)."""
        self._put(self.registry_key, bytes(document))


@hookimpl
def agentworld_register_module_stores(register: Callable[..., None]) -> None:
    """Provide the `s3` scheme (registered even without boto3; opening then explains)."""
    register("s3", S3Store, description="an S3-compatible bucket: s3://bucket/prefix?endpoint_url=")
