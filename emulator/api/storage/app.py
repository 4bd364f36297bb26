"""A small path-style S3-compatible object store, served as a standalone ASGI app.

Supported: CreateBucket, HeadBucket, DeleteBucket, ListBuckets, GetBucketLocation,
ListObjects (v1 and v2, with prefix, delimiter, max-keys and pagination), PutObject (plain or
aws-chunked bodies), GetObject (with single byte ranges), HeadObject and DeleteObject.
Multipart uploads, CopyObject, ACLs, tagging, versioning and the other sub-resources answer
501 NotImplemented.

Requests must be path-style (`/{bucket}/{key}`); virtual-hosted addressing is not recognised.

Every request must be signed with AWS Signature V4, in the Authorization header or as a
presigned URL (see `auth`): the signature, the clock skew of header-signed requests (15 min),
a presigned URL's expiry (at most a week) and a hex `x-amz-content-sha256` against the body
are all checked. Access keys come from `--s3-credentials` (`ACCESS_KEY:SECRET=instance`);
without it each instance has the predictable pair `emulator-NAME` / `emulator-secret-NAME`,
fine on a laptop, not on a shared server.

A bucket belongs to the instance whose key created it (explicitly, or by the first PUT into
it); only that instance's keys can list, read, write, head or delete in it, and ListBuckets
shows a caller only its own. Buckets from before ownership belong to the default instance.
Objects are limited to `--max-object-mb`, and keys XML 1.0 cannot carry are refused, so every
listing is a well-formed document.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import secrets
from email.utils import formatdate
from typing import NoReturn
from urllib.parse import quote, unquote_to_bytes

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import QueryParams
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from emulator.api.storage import wire
from emulator.api.storage.auth import Signed, SigV4Verifier, WireRequest, is_hex_sha256
from emulator.api.storage.credentials import parse_s3_credentials
from emulator.api.storage.errors import S3Error, access_denied
from emulator.api.storage.store import (
    NotOwner,
    ObjectMeta,
    ObjectStore,
    crc32_base64,
    valid_bucket_name,
)
from emulator.config import Settings

log = logging.getLogger("emulator.api.storage")

MAX_KEY_BYTES = 1024
DEFAULT_MAX_KEYS = 1000

_XML = "application/xml"
_DEFAULT_CONTENT_TYPE = "application/octet-stream"
_S3_QUERY_NAMES = frozenset({b"x-amz-algorithm", b"x-amz-signature", b"x-amz-credential", b"x-id"})
_SIGV4 = b"aws4-hmac-sha256"

# Sub-resources this store does not implement; without this check, `PUT ?partNumber=..` would
# silently store a part as the whole object, and `GET ?acl` would answer with the object bytes.
_OBJECT_SUBRESOURCES = frozenset(
    {
        "acl",
        "attributes",
        "legal-hold",
        "partNumber",
        "restore",
        "retention",
        "select",
        "tagging",
        "torrent",
        "uploadId",
        "uploads",
        "versionId",
    }
)
_BUCKET_SUBRESOURCES = frozenset(
    {
        "accelerate",
        "acl",
        "analytics",
        "cors",
        "delete",
        "encryption",
        "intelligent-tiering",
        "inventory",
        "lifecycle",
        "logging",
        "metrics",
        "notification",
        "object-lock",
        "ownershipControls",
        "policy",
        "policyStatus",
        "publicAccessBlock",
        "replication",
        "requestPayment",
        "tagging",
        "uploads",
        "versioning",
        "versions",
        "website",
    }
)
# S3's presigned-URL response overrides: `?response-content-type=...` etc.
_RESPONSE_OVERRIDES = {
    "response-cache-control": "cache-control",
    "response-content-disposition": "content-disposition",
    "response-content-encoding": "content-encoding",
    "response-content-language": "content-language",
    "response-content-type": "content-type",
    "response-expires": "expires",
}


def is_s3_request(scope: Scope) -> bool:
    """True when an HTTP request carries an S3 marker: a SigV4 `Authorization` header, an
    `x-amz-content-sha256` header, or a presigned-URL / SDK (`x-id`) query parameter."""
    if scope.get("type") != "http":
        return False
    for name, value in scope.get("headers", ()):
        name = name.lower()
        if name == b"x-amz-content-sha256":
            return True
        if name == b"authorization" and value.lstrip()[:16].lower() == _SIGV4:
            return True
    query: bytes = scope.get("query_string", b"")
    if query:
        for pair in query.split(b"&"):
            if pair.split(b"=", 1)[0].lower() in _S3_QUERY_NAMES:
                return True
    return False


def create_storage_app(settings: Settings) -> ASGIApp:
    """The object store as an ASGI app: objects under the data dir, the settings' access keys
    (ValueError when `s3_credentials` cannot be used) and their size limit."""
    instances = settings.instance_list
    keys = parse_s3_credentials(settings.s3_credentials, instances)
    store = ObjectStore(settings.data_dir / "objects", default_owner=instances[0].crn)
    return _StorageApp(store, SigV4Verifier(keys), settings.max_object_mb * 1024 * 1024)


def _not_implemented(what: str) -> NoReturn:
    raise S3Error(
        501,
        "NotImplemented",
        f"{what} is not implemented by the emulator's object store; it supports single-request "
        "PutObject, GetObject, HeadObject, DeleteObject, ListObjects and bucket create/delete.",
    )


class _StorageApp:
    def __init__(self, store: ObjectStore, verifier: SigV4Verifier, max_object_size: int) -> None:
        self.store = store
        self.verifier = verifier
        self.max_object_size = max_object_size
        # aws-chunked framing adds a few bytes per chunk (more with signatures) and trailers
        self.max_chunked_wire_size = max_object_size + max_object_size // 16 + 64 * 1024

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            await send({"type": "websocket.close", "code": 1003})
            return
        request = Request(scope, receive)
        request_id = secrets.token_hex(8).upper()
        try:
            signed = self.verifier.authenticate(_wire_request(scope))
            response = await self._dispatch(request, signed)
        except S3Error as exc:
            response = _error_response(request, exc, request_id)
        except ClientDisconnect:
            return  # the client hung up mid-upload: nobody to answer, nothing was stored
        except Exception:  # noqa: BLE001 - S3 clients only understand S3 error documents
            log.exception("object store failed on %s %s", request.method, scope.get("path"))
            internal = S3Error(500, "InternalError", "We encountered an internal error.")
            response = _error_response(request, internal, request_id)
        response.headers["x-amz-request-id"] = request_id
        await response(scope, receive, send)

    async def _dispatch(self, request: Request, signed: Signed) -> Response:
        path = _decoded_path(request.scope)
        bucket, _, key = path.removeprefix("/").partition("/")
        method = request.method
        query = request.query_params
        caller = signed.key.instance
        if not bucket:
            if method == "GET" and not query.keys() & _BUCKET_SUBRESOURCES:
                buckets = await run_in_threadpool(self.store.list_buckets, caller)
                return _xml(wire.list_buckets_document(buckets))
            _not_implemented(f"{method} on the service root")
        if not valid_bucket_name(bucket):
            raise S3Error(
                400,
                "InvalidBucketName",
                "The specified bucket is not valid: names are 3-63 characters of lower-case "
                "letters, digits, '.' and '-', starting and ending with a letter or digit.",
                BucketName=bucket,
            )
        if not key:
            return await self._bucket(request, method, bucket, query, caller)
        if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
            raise S3Error(400, "KeyTooLongError", "Your key is too long.", BucketName=bucket)
        unsupported = sorted(query.keys() & _OBJECT_SUBRESOURCES)
        if unsupported:
            _not_implemented(f"{method} with ?{unsupported[0]}")
        if method == "PUT":
            return await self._put_object(request, bucket, key, signed)
        if method not in ("GET", "HEAD", "DELETE"):
            _not_implemented(f"{method} on an object")
        # Ownership first: another instance learns nothing about the keys in the bucket.
        if not await self._owned(bucket, caller):
            raise _no_such_bucket(bucket)
        if method == "DELETE":
            await run_in_threadpool(self.store.delete, bucket, key)
            return Response(status_code=204)
        return await self._get_object(request, bucket, key)

    async def _owned(self, bucket: str, caller: str) -> bool:
        """True when `caller` owns the bucket, False when there is none; AccessDenied else."""
        owner = await run_in_threadpool(self.store.bucket_owner, bucket)
        if owner is None:
            return False
        if owner != caller:
            raise access_denied()
        return True

    async def _bucket(
        self, request: Request, method: str, bucket: str, query: QueryParams, caller: str
    ) -> Response:
        if method == "GET" and "location" in query:
            if not await self._owned(bucket, caller):
                raise _no_such_bucket(bucket)
            return _xml(wire.location_document())
        unsupported = sorted(query.keys() & _BUCKET_SUBRESOURCES)
        if unsupported:
            _not_implemented(f"{method} with ?{unsupported[0]}")
        if method == "PUT":
            owner = await run_in_threadpool(self.store.create_bucket, bucket, caller)
            if owner != caller:
                raise S3Error(
                    409,
                    "BucketAlreadyExists",
                    "The requested bucket name is not available. The bucket namespace is "
                    "shared by all users of the system. Please select a different name and "
                    "try again.",
                    BucketName=bucket,
                )
            return Response(status_code=200, headers={"location": f"/{bucket}"})
        if method not in ("GET", "HEAD", "DELETE"):
            _not_implemented(f"{method} on a bucket")
        if not await self._owned(bucket, caller):
            raise _no_such_bucket(bucket)
        if method == "HEAD":
            return Response(status_code=200, headers={"x-amz-bucket-region": "us-east-1"})
        if method == "GET":
            return await self._list_objects(bucket, query)
        outcome = await run_in_threadpool(self.store.delete_bucket, bucket)
        if outcome is None:
            raise _no_such_bucket(bucket)
        if not outcome:
            raise S3Error(
                409,
                "BucketNotEmpty",
                "The bucket you tried to delete is not empty.",
                BucketName=bucket,
            )
        return Response(status_code=204)

    async def _list_objects(self, bucket: str, query: QueryParams) -> Response:
        objects = await run_in_threadpool(self.store.list, bucket)
        if objects is None:
            raise _no_such_bucket(bucket)
        version = 2 if query.get("list-type") == "2" else 1
        prefix = query.get("prefix", "")
        delimiter = query.get("delimiter") or None
        max_keys = _max_keys(query.get("max-keys"))
        encoding = query.get("encoding-type")
        if encoding not in (None, "url"):
            raise S3Error(400, "InvalidArgument", "Invalid Encoding Method specified in Request")
        if encoding is None:
            for name in ("prefix", "delimiter", "marker", "start-after"):
                problem = wire.xml_unsafe(query.get(name) or "")
                if problem is not None:
                    raise S3Error(
                        400,
                        "InvalidArgument",
                        f"{name} holds {problem}, which XML 1.0 cannot carry; list with "
                        "encoding-type=url.",
                        ArgumentName=name,
                    )
        token = query.get("continuation-token") if version == 2 else None
        start_after = query.get("start-after") if version == 2 else None
        marker = query.get("marker") if version == 1 else None
        after = _decode_token(token) if token is not None else (start_after or marker)

        contents: list[ObjectMeta] = []
        common: list[str] = []
        truncated = False
        last: str | None = None
        for meta in objects:
            if not meta.key.startswith(prefix) or (after is not None and meta.key <= after):
                continue
            grouped = _common_prefix(meta.key, prefix, delimiter)
            # a page that ended on this common prefix already covered all of it
            if grouped is not None and (grouped == after or (common and common[-1] == grouped)):
                continue
            if len(contents) + len(common) >= max_keys:
                truncated = max_keys > 0
                break
            if grouped is None:
                contents.append(meta)
                last = meta.key
            else:
                common.append(grouped)
                last = grouped

        listing = wire.Listing(
            bucket=bucket,
            prefix=prefix,
            delimiter=delimiter,
            max_keys=max_keys,
            contents=contents,
            common_prefixes=common,
            truncated=truncated,
            url_encoded=encoding == "url",
            version=version,
            start_after=start_after,
            continuation_token=token,
            next_continuation_token=_encode_token(last) if truncated and last else None,
            marker=marker,
            next_marker=last if truncated and version == 1 else None,
        )
        try:
            return _xml(wire.list_objects_document(listing))
        except wire.UnsafeXml as exc:  # only keys stored before such keys were refused
            raise S3Error(
                400,
                "InvalidArgument",
                f"A key or parameter of this listing holds {exc}, which XML 1.0 cannot carry; "
                "list with encoding-type=url.",
                ArgumentName="encoding-type",
            ) from None

    async def _put_object(
        self, request: Request, bucket: str, key: str, signed: Signed
    ) -> Response:
        headers = request.headers
        if "x-amz-copy-source" in headers:
            _not_implemented("CopyObject")
        problem = wire.xml_unsafe(key)
        if problem is not None:
            raise S3Error(
                400,
                "InvalidArgument",
                f"The object key holds {problem}: keys may not contain control characters "
                "(other than tab, newline and carriage return), lone surrogates, U+FFFE or "
                "U+FFFF, which no XML listing could carry.",
                ArgumentName="key",
            )
        # Refused before the body is read: another instance's upload is not even buffered.
        owner = await run_in_threadpool(self.store.bucket_owner, bucket)
        if owner is not None and owner != signed.key.instance:
            raise access_denied()
        encodings = [e.strip() for e in headers.get("content-encoding", "").split(",") if e.strip()]
        chunked = "aws-chunked" in (e.lower() for e in encodings) or headers.get(
            "x-amz-content-sha256", ""
        ).startswith("STREAMING-")
        decoded_length = self._decoded_length(headers.get("x-amz-decoded-content-length"))
        limit = self.max_chunked_wire_size if chunked else self.max_object_size
        body = await self._read_body(request, limit)
        if signed.content_sha256 is not None and is_hex_sha256(signed.content_sha256):
            computed = await run_in_threadpool(lambda: hashlib.sha256(body).hexdigest())
            if computed != signed.content_sha256:
                raise S3Error(
                    400,
                    "XAmzContentSHA256Mismatch",
                    "The provided 'x-amz-content-sha256' header does not match what was computed.",
                    ClientComputedContentSHA256=signed.content_sha256,
                    S3ComputedContentSHA256=computed,
                )
        trailers: dict[str, str] = {}
        if chunked:
            try:
                body, trailers = await run_in_threadpool(wire.decode_aws_chunked, body)
            except wire.ChunkedBodyError as exc:
                raise _incomplete_body(f"Malformed aws-chunked body: {exc}.") from exc
            if decoded_length is not None and decoded_length != len(body):
                raise _incomplete_body(
                    f"The chunked body decodes to {len(body)} bytes but "
                    f"x-amz-decoded-content-length says {decoded_length}."
                )
            if len(body) > self.max_object_size:
                raise self._entity_too_large()
        claimed_crc32 = trailers.get("x-amz-checksum-crc32", headers.get("x-amz-checksum-crc32"))
        await run_in_threadpool(_verify_digests, body, headers.get("content-md5"), claimed_crc32)

        try:
            meta = await run_in_threadpool(
                lambda: self.store.put(
                    bucket,
                    key,
                    body,
                    headers.get("content-type") or _DEFAULT_CONTENT_TYPE,
                    ",".join(e for e in encodings if e.lower() != "aws-chunked") or None,
                    {
                        name: value
                        for name, value in headers.items()
                        if name.lower().startswith("x-amz-meta-")
                    },
                    owner=signed.key.instance,
                )
            )
        except NotOwner:  # another instance created the bucket while this body was read
            raise access_denied() from None
        return Response(
            status_code=200,
            headers={"etag": f'"{meta.etag}"', "x-amz-checksum-crc32": meta.crc32},
        )

    def _entity_too_large(self) -> S3Error:
        return S3Error(
            400,
            "EntityTooLarge",
            "Your proposed upload exceeds the maximum allowed object size "
            f"({self.max_object_size} bytes).",
            MaxSizeAllowed=str(self.max_object_size),
        )

    def _decoded_length(self, raw: str | None) -> int | None:
        if raw is None:
            return None
        if not raw.strip().isdigit():
            raise _incomplete_body("x-amz-decoded-content-length is not a byte count.")
        value = int(raw)
        if value > self.max_object_size:
            raise self._entity_too_large()
        return value

    async def _read_body(self, request: Request, limit: int) -> bytes:
        # Objects here are small JSON documents, so buffering is fine; the cap bounds memory.
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise self._entity_too_large()
        body = bytearray()
        async for piece in request.stream():
            body += piece
            if len(body) > limit:
                raise self._entity_too_large()
        return bytes(body)

    async def _get_object(self, request: Request, bucket: str, key: str) -> Response:
        head = request.method == "HEAD"
        if head:
            meta = await run_in_threadpool(self.store.head, bucket, key)
            body = b""
        else:
            found = await run_in_threadpool(self.store.get, bucket, key)
            meta, body = found if found is not None else (None, b"")
        if meta is None:
            raise S3Error(
                404,
                "NoSuchKey",
                "The specified key does not exist.",
                Key=key,
                BucketName=bucket,
            )

        headers = {
            "content-type": meta.content_type,
            "etag": f'"{meta.etag}"',
            "last-modified": formatdate(meta.mtime, usegmt=True),
            "accept-ranges": "bytes",
        }
        if meta.content_encoding:
            headers["content-encoding"] = meta.content_encoding
        headers.update(meta.user_metadata)
        for param, header in _RESPONSE_OVERRIDES.items():
            if param in request.query_params:
                headers[header] = request.query_params[param]

        status = 200
        window = _byte_range(request.headers.get("range"), meta.size)
        if window is not None:
            start, stop = window
            status = 206
            headers["content-range"] = f"bytes {start}-{stop - 1}/{meta.size}"
            body = body[start:stop]
            length = stop - start
        else:
            length = meta.size
            # A ranged response carries only part of the object, so its full-object checksum
            # would fail client-side validation; S3 also sends it only for whole objects.
            if request.headers.get("x-amz-checksum-mode", "").upper() == "ENABLED":
                headers["x-amz-checksum-crc32"] = meta.crc32
                headers["x-amz-checksum-type"] = "FULL_OBJECT"
        if head:
            headers["content-length"] = str(length)  # Starlette would say 0 for the empty body
        return Response(content=body, status_code=status, headers=headers)


async def _lifespan(receive: Receive, send: Send) -> None:
    # Served alone (tests, uvicorn) the app gets lifespan events; it has nothing to set up.
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def _raw_path(scope: Scope) -> str:
    """The request path exactly as the client sent it (what it signed), percent-encoded."""
    raw: bytes | None = scope.get("raw_path")
    if raw is None:  # ASGI makes raw_path optional; re-encode the decoded one
        return quote(scope["path"], safe="/~!$&'()*+,;=:@")
    return raw.decode("latin-1")


def _wire_request(scope: Scope) -> WireRequest:
    return WireRequest(
        method=scope["method"],
        raw_path=_raw_path(scope),
        query=scope.get("query_string", b"").decode("latin-1"),
        headers=[(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope["headers"]],
    )


def _decoded_path(scope: Scope) -> str:
    """The path percent-decoded as strict UTF-8.

    The server's own `scope["path"]` replaces invalid UTF-8 with U+FFFD, which would merge
    different keys into one; such a path is refused instead.
    """
    raw = _raw_path(scope)
    root = scope.get("root_path", "")
    if root and raw.startswith(root):
        raw = raw[len(root) :]
    try:
        return unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise S3Error(
            400,
            "InvalidArgument",
            f"The object key is not valid UTF-8 (byte {exc.start} of the decoded path starts a "
            "lone surrogate or a broken sequence), so no XML listing could carry it.",
            ArgumentName="key",
        ) from None


def _xml(document: bytes, status: int = 200) -> Response:
    return Response(content=document, status_code=status, media_type=_XML)


def _error_response(request: Request, exc: S3Error, request_id: str) -> Response:
    if request.method == "HEAD":  # S3 answers HEAD errors with the status alone
        return Response(status_code=exc.status)
    document = wire.error_document(exc.code, exc.message, request_id, exc.fields)
    return _xml(document, exc.status)


def _no_such_bucket(bucket: str) -> S3Error:
    return S3Error(404, "NoSuchBucket", "The specified bucket does not exist.", BucketName=bucket)


def _incomplete_body(message: str) -> S3Error:
    return S3Error(400, "IncompleteBody", message)


def _max_keys(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_MAX_KEYS
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise S3Error(400, "InvalidArgument", "max-keys must be a non-negative integer.")
    return min(value, DEFAULT_MAX_KEYS)


def _common_prefix(key: str, prefix: str, delimiter: str | None) -> str | None:
    """The CommonPrefixes entry `key` rolls up into, or None when it is listed itself."""
    if delimiter is None:
        return None
    cut = key.find(delimiter, len(prefix))
    return key[: cut + len(delimiter)] if cut >= 0 else None


def _encode_token(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode("utf-8", "surrogatepass")).decode("ascii")


def _decode_token(token: str) -> str:
    try:
        raw = base64.b64decode(token.encode("ascii"), altchars=b"-_", validate=True)
        return raw.decode("utf-8", "surrogatepass")
    except (ValueError, UnicodeError) as exc:
        raise S3Error(
            400, "InvalidArgument", "The continuation token provided is incorrect."
        ) from exc


def _verify_digests(body: bytes, content_md5: str | None, crc32: str | None) -> None:
    """Reject a body whose Content-MD5 or CRC-32 (header or aws-chunked trailer) is wrong."""
    if content_md5 is not None:
        try:
            expected = base64.b64decode(content_md5, validate=True)
        except binascii.Error as exc:
            raise S3Error(
                400, "InvalidDigest", "The Content-MD5 you specified is not valid."
            ) from exc
        if expected != hashlib.md5(body, usedforsecurity=False).digest():
            raise S3Error(
                400, "BadDigest", "The Content-MD5 you specified did not match what we received."
            )
    if crc32 is not None and crc32.strip() != crc32_base64(body):
        raise S3Error(
            400,
            "BadDigest",
            "The CRC32 you specified did not match the calculated checksum.",
        )


def _byte_range(raw: str | None, size: int) -> tuple[int, int] | None:
    """The `[start, stop)` window of a single-range `Range` header, or None for the whole object.

    Multi-range and unparsable headers are ignored, as S3 does; an unsatisfiable range is 416.
    """
    if not raw or not raw.startswith("bytes=") or "," in raw:
        return None
    first, sep, last = raw[len("bytes=") :].strip().partition("-")
    if not sep or not (first.isdigit() or last.isdigit()):
        return None
    if not first:  # suffix range: the last N bytes
        if not last.isdigit() or int(last) == 0:
            raise _invalid_range(size)
        return max(size - int(last), 0), size
    if not first.isdigit() or (last and not last.isdigit()):
        return None
    start = int(first)
    stop = min(int(last) + 1, size) if last else size
    if start >= size or stop <= start:
        raise _invalid_range(size)
    return start, stop


def _invalid_range(size: int) -> S3Error:
    return S3Error(
        416,
        "InvalidRange",
        "The requested range is not satisfiable",
        ActualObjectSize=str(size),
    )
