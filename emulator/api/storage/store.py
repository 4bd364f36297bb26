"""On-disk layout of the object store: one directory per bucket, one file per object.

`root/<bucket>/<sha256(key) hex>.obj` holds a one-line JSON header (the original key, content
type, etag, crc32, size, mtime, user metadata), a newline, then the object's bytes. Hashing the
key means no key - `..`, `/`, unicode, 1024 bytes - can name a path outside the bucket, and
keeping header and bytes in one file means a single `os.replace` publishes both at once: a
reader sees the old object or the new one, never a mix or half of either.

`root/<bucket>/.bucket.json` records the CRN of the instance that created the bucket (its
owner). A bucket directory appears with that file already inside (it is staged under a
temporary name and renamed into place), so no one ever sees a new bucket without its owner.
Directories without one predate ownership and belong to the default instance.

Every method blocks on file I/O; callers on the event loop run them in a worker thread.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_IP_ADDRESS = re.compile(r"\d+\.\d+\.\d+\.\d+")
_SUFFIX = ".obj"
_TEMP_PREFIX = ".tmp-"
_HEADER_LIMIT = 1 << 20  # key <= 1 KiB and metadata <= 2 KiB in S3; anything longer is corrupt
_OWNER_FILE = ".bucket.json"

log = logging.getLogger("emulator.api.storage")


def valid_bucket_name(name: str) -> bool:
    """S3's bucket naming rules (the subset that matters for path-style addressing)."""
    return (
        BUCKET_NAME.fullmatch(name) is not None
        and ".." not in name
        and _IP_ADDRESS.fullmatch(name) is None
    )


def crc32_base64(data: bytes) -> str:
    """The `x-amz-checksum-crc32` form: base64 of the big-endian 4-byte zlib CRC-32."""
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode("ascii")


@dataclass(frozen=True)
class ObjectMeta:
    """What a PUT recorded about an object, besides its bytes."""

    key: str
    size: int
    etag: str  # md5 hex, unquoted
    crc32: str  # base64, as in x-amz-checksum-crc32
    content_type: str
    mtime: float
    content_encoding: str | None = None
    user_metadata: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> bytes:
        record = {
            "v": 1,
            "key": self.key,
            "size": self.size,
            "etag": self.etag,
            "crc32": self.crc32,
            "content_type": self.content_type,
            "mtime": self.mtime,
            "content_encoding": self.content_encoding,
            "user_metadata": self.user_metadata,
        }
        # json.dumps escapes control characters, so the header never contains a raw newline
        return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    @classmethod
    def from_json(cls, raw: bytes) -> ObjectMeta:
        record: dict[str, Any] = json.loads(raw)
        return cls(
            key=record["key"],
            size=int(record["size"]),
            etag=record["etag"],
            crc32=record["crc32"],
            content_type=record["content_type"],
            mtime=float(record["mtime"]),
            content_encoding=record.get("content_encoding"),
            user_metadata=dict(record.get("user_metadata") or {}),
        )


class CorruptObject(Exception):
    """An object file whose header cannot be read back."""


class NotOwner(Exception):
    """The bucket exists and belongs to another instance."""


class ObjectStore:
    """Buckets and objects under one root directory; each bucket belongs to one instance.

    Bucket creation, PUTs (which create their bucket when it is missing) and bucket deletion
    take one lock for their bookkeeping steps, so a bucket is never deleted under a PUT that
    is being written, nor created twice with different owners. Reads take no lock.
    """

    def __init__(self, root: Path, default_owner: str) -> None:
        self.root = root
        self.default_owner = default_owner
        self._lock = threading.Lock()
        self._writing: Counter[str] = Counter()  # PUTs in progress, by bucket

    def _bucket(self, bucket: str) -> Path:
        # Callers validate names against BUCKET_NAME first; this is the backstop.
        if not valid_bucket_name(bucket):
            raise ValueError(f"invalid bucket name {bucket!r}")
        return self.root / bucket

    def _object(self, bucket: str, key: str) -> Path:
        digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
        return self._bucket(bucket) / (digest + _SUFFIX)

    def bucket_owner(self, bucket: str) -> str | None:
        """The CRN of the bucket's owner, or None when there is no such bucket."""
        path = self._bucket(bucket)
        try:
            raw = (path / _OWNER_FILE).read_bytes()
        except FileNotFoundError:
            return self.default_owner if path.is_dir() else None
        except NotADirectoryError:
            return None
        try:
            owner = json.loads(raw)["owner"]
            if isinstance(owner, str) and owner:
                return owner
        except (ValueError, KeyError, TypeError):
            pass
        log.warning("bucket %s: unreadable owner record; the default instance owns it", bucket)
        return self.default_owner

    def create_bucket(self, bucket: str, owner: str) -> str:
        """Create the bucket for `owner` unless it exists; the owner it has afterwards."""
        with self._lock:
            return self._ensure_bucket(bucket, owner)

    def _ensure_bucket(self, bucket: str, owner: str) -> str:
        current = self.bucket_owner(bucket)
        if current is not None:
            return current
        self.root.mkdir(parents=True, exist_ok=True)
        staging = tempfile.mkdtemp(prefix=_TEMP_PREFIX, dir=self.root)
        try:
            record = json.dumps({"owner": owner, "created": time.time()}).encode()
            with open(os.path.join(staging, _OWNER_FILE), "wb") as out:
                out.write(record)
                out.flush()
                os.fsync(out.fileno())  # an empty owner record after a crash would be unowned
            os.rename(staging, self._bucket(bucket))
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return owner

    def delete_bucket(self, bucket: str) -> bool | None:
        """Remove an empty bucket: True when removed, False when not empty, None when missing."""
        path = self._bucket(bucket)
        with self._lock:
            owner = self.bucket_owner(bucket)
            if owner is None:
                return None
            entries = list(os.scandir(path))
            objects = any(e.name.endswith(_SUFFIX) and not e.name.startswith(".") for e in entries)
            if objects or self._writing[bucket]:
                return False
            for entry in entries:  # leftovers of writes that crashed before their rename
                if entry.name.startswith(_TEMP_PREFIX):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.path)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path / _OWNER_FILE)
            try:
                path.rmdir()
            except OSError:  # something else lives there: keep the bucket, and its owner
                self._restore_owner(path, owner)
                return False
            return True

    def _restore_owner(self, path: Path, owner: str) -> None:
        record = json.dumps({"owner": owner, "created": time.time()}).encode()
        (path / _OWNER_FILE).write_bytes(record)

    def list_buckets(self, owner: str) -> list[tuple[str, float]]:
        """(name, creation time) of every bucket `owner` owns, sorted by name."""
        try:
            entries = list(os.scandir(self.root))
        except FileNotFoundError:
            return []
        buckets = [
            (e.name, e.stat().st_mtime)
            for e in entries
            if e.is_dir() and valid_bucket_name(e.name) and self.bucket_owner(e.name) == owner
        ]
        return sorted(buckets)

    def put(
        self,
        bucket: str,
        key: str,
        body: bytes,
        content_type: str,
        content_encoding: str | None = None,
        user_metadata: dict[str, str] | None = None,
        *,
        owner: str,
    ) -> ObjectMeta:
        """Store `body` under `key`; atomic and durable.

        A missing bucket is created for `owner`; a bucket of another owner raises NotOwner.
        """
        meta = ObjectMeta(
            key=key,
            size=len(body),
            etag=hashlib.md5(body, usedforsecurity=False).hexdigest(),
            crc32=crc32_base64(body),
            content_type=content_type,
            mtime=time.time(),
            content_encoding=content_encoding,
            user_metadata=dict(user_metadata or {}),
        )
        target = self._object(bucket, key)
        with self._lock:
            if self._ensure_bucket(bucket, owner) != owner:
                raise NotOwner(bucket)
            # The temp file and the count keep delete_bucket away until the rename is done.
            fd, temp = tempfile.mkstemp(prefix=_TEMP_PREFIX, dir=target.parent)
            self._writing[bucket] += 1
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(meta.to_json())
                out.write(b"\n")
                out.write(body)
                out.flush()
                # Without fsync a power cut after the rename can leave an empty file behind
                # the name that used to hold the previous, intact version.
                os.fsync(out.fileno())
            os.replace(temp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            raise
        finally:
            with self._lock:
                self._writing[bucket] -= 1
                if not self._writing[bucket]:
                    del self._writing[bucket]
        return meta

    def get(self, bucket: str, key: str) -> tuple[ObjectMeta, bytes] | None:
        """The object's metadata and bytes, or None when there is no such object."""
        try:
            with open(self._object(bucket, key), "rb") as src:
                meta = self._read_header(src.readline(_HEADER_LIMIT), key)
                body = src.read()
        except FileNotFoundError:
            return None
        if len(body) != meta.size:
            raise CorruptObject(f"object {key!r} holds {len(body)} bytes, header says {meta.size}")
        return meta, body

    def head(self, bucket: str, key: str) -> ObjectMeta | None:
        """The object's metadata without reading its bytes, or None when missing."""
        try:
            with open(self._object(bucket, key), "rb") as src:
                return self._read_header(src.readline(_HEADER_LIMIT), key)
        except FileNotFoundError:
            return None

    def delete(self, bucket: str, key: str) -> None:
        """Remove the object; a missing object (or bucket) is not an error, as in S3."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._object(bucket, key))

    def list(self, bucket: str) -> list[ObjectMeta] | None:
        """Every object in the bucket sorted by key, or None when the bucket does not exist."""
        try:
            entries = list(os.scandir(self._bucket(bucket)))
        except FileNotFoundError:
            return None
        objects: list[ObjectMeta] = []
        for entry in entries:
            if not entry.name.endswith(_SUFFIX) or entry.name.startswith("."):
                continue
            try:
                with open(entry.path, "rb") as src:
                    objects.append(self._read_header(src.readline(_HEADER_LIMIT), None))
            except (FileNotFoundError, CorruptObject):
                continue  # deleted while listing, or unreadable: not part of the listing
        # Code-point order equals S3's UTF-8 byte order.
        objects.sort(key=lambda meta: meta.key)
        return objects

    @staticmethod
    def _read_header(line: bytes, expected_key: str | None) -> ObjectMeta:
        if not line.endswith(b"\n"):
            raise CorruptObject("object header is missing or truncated")
        try:
            meta = ObjectMeta.from_json(line)
        except (ValueError, KeyError, TypeError) as exc:
            raise CorruptObject(f"object header is unreadable: {exc}") from exc
        if expected_key is not None and meta.key != expected_key:
            raise CorruptObject(f"object file for {expected_key!r} holds {meta.key!r}")
        return meta
