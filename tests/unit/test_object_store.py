"""The built-in S3-compatible object store, driven through its ASGI interface and through boto3.

Every request is signed with team-a's default key (see `tests.s3_signing`); what signing and
ownership refuse is tested in `test_object_store_auth.py`.
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from botocore.exceptions import ClientError
from botocore.httpchecksum import AwsChunkedWrapper, Crc32Checksum
from starlette.types import ASGIApp, Scope

from emulator.api.storage import is_s3_request
from tests.s3_signing import Served, call, raw_call, storage_app

NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


def crc32_b64(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def key_path(bucket: str, key: str) -> str:
    # Encode every dot too: httpx would otherwise resolve `..` segments before sending.
    return f"/{bucket}/" + quote(key, safe="").replace(".", "%2E")


def error_code(response: httpx.Response) -> str:
    assert response.headers["content-type"].startswith("application/xml")
    root = ET.fromstring(response.content)
    assert root.tag == "Error"
    assert root.findtext("RequestId")
    return root.findtext("Code") or ""


def files_under(path: Path) -> list[Path]:
    """Object files (and leftovers), not the buckets' owner records."""
    return [p for p in path.rglob("*") if p.is_file() and p.name != ".bucket.json"]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "objects"


@pytest.fixture
def app(tmp_path: Path) -> ASGIApp:
    return storage_app(tmp_path)


# --- ASGI-level behaviour ---------------------------------------------------------------------


def test_put_get_head_delete_round_trip(app: ASGIApp) -> None:
    body = b'{"hello": "world"}'
    put = call(
        app, "PUT", "/jobs/in/one.json", content=body, headers={"content-type": "application/json"}
    )
    assert put.status_code == 200
    assert put.content == b""
    assert put.headers["etag"] == f'"{hashlib.md5(body).hexdigest()}"'

    got = call(app, "GET", "/jobs/in/one.json")
    assert got.status_code == 200
    assert got.content == body
    assert got.headers["content-type"] == "application/json"
    assert got.headers["content-length"] == str(len(body))
    assert got.headers["etag"] == put.headers["etag"]
    assert parsedate_to_datetime(got.headers["last-modified"]).tzinfo is not None
    assert "x-amz-checksum-crc32" not in got.headers

    head = call(app, "HEAD", "/jobs/in/one.json")
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == str(len(body))
    assert head.headers["content-type"] == "application/json"
    assert head.headers["etag"] == put.headers["etag"]

    assert call(app, "DELETE", "/jobs/in/one.json").status_code == 204
    assert call(app, "GET", "/jobs/in/one.json").status_code == 404
    assert call(app, "HEAD", "/jobs/in/one.json").status_code == 404
    assert call(app, "DELETE", "/jobs/in/one.json").status_code == 204  # missing is fine, as S3


def test_overwrite_replaces_and_default_content_type(app: ASGIApp, root: Path) -> None:
    assert call(app, "PUT", "/b-1/k", content=b"first").status_code == 200
    assert call(app, "PUT", "/b-1/k", content=b"second").status_code == 200
    got = call(app, "GET", "/b-1/k")
    assert got.content == b"second"
    assert got.headers["content-type"] == "application/octet-stream"
    assert len(files_under(root)) == 1  # no temp file left behind


def test_missing_key_is_no_such_key_xml(app: ASGIApp) -> None:
    call(app, "PUT", "/bucket")
    missing = call(app, "GET", "/bucket/nope/x.json")
    assert missing.status_code == 404
    assert missing.content.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    assert error_code(missing) == "NoSuchKey"
    root = ET.fromstring(missing.content)
    assert root.findtext("Key") == "nope/x.json"
    assert root.findtext("BucketName") == "bucket"


HOSTILE_KEYS = [
    "a/b/c.json",
    "..",
    "../../../escape.txt",
    "../",
    "/leading/slash",
    "x/../../y",
    "with space/and ünïcödé ✓.json",
    "percent%2e%2e/plus+and?query#frag",
    "é" * 512,  # 1024 bytes of UTF-8
]


def test_hostile_keys_stay_inside_root(app: ASGIApp, root: Path, tmp_path: Path) -> None:
    for index, key in enumerate(HOSTILE_KEYS):
        put = call(app, "PUT", key_path("safe", key), content=f"object {index}".encode())
        assert put.status_code == 200, key
    for index, key in enumerate(HOSTILE_KEYS):
        assert call(app, "GET", key_path("safe", key)).content == f"object {index}".encode()

    listing = ET.fromstring(call(app, "GET", "/safe?list-type=2").content)
    assert sorted(k.text or "" for k in listing.iter(f"{NS}Key")) == sorted(HOSTILE_KEYS)

    stored = files_under(tmp_path)
    assert len(stored) == len(HOSTILE_KEYS)
    for path in stored:
        assert path.resolve().is_relative_to((root / "safe").resolve())


def test_key_longer_than_1024_bytes_is_rejected(app: ASGIApp, root: Path) -> None:
    response = call(app, "PUT", key_path("safe", "k" * 1025), content=b"x")
    assert response.status_code == 400
    assert error_code(response) == "KeyTooLongError"
    assert files_under(root) == []


@pytest.mark.parametrize(
    "bucket",
    ["ab", "Upper", "-start", "end-", "a" * 64, "a..b", "under_score", "192.168.1.1", ".dot"],
)
def test_invalid_bucket_name_is_400(app: ASGIApp, root: Path, bucket: str) -> None:
    for method, path in (("PUT", f"/{bucket}"), ("PUT", f"/{bucket}/key"), ("GET", f"/{bucket}")):
        response = call(app, method, path, content=b"x" if path.endswith("key") else None)
        assert response.status_code == 400
        assert error_code(response) == "InvalidBucketName"
    assert not root.exists()


def test_bucket_routes(app: ASGIApp) -> None:
    assert call(app, "HEAD", "/fresh").status_code == 404
    list_missing = call(app, "GET", "/fresh?list-type=2")
    assert list_missing.status_code == 404
    assert error_code(list_missing) == "NoSuchBucket"

    for _ in range(2):  # idempotent
        created = call(app, "PUT", "/fresh")
        assert created.status_code == 200
        assert created.content == b""
    assert call(app, "HEAD", "/fresh").status_code == 200
    assert call(app, "HEAD", "/fresh/").status_code == 200  # empty key: a bucket route

    call(app, "PUT", "/fresh/k", content=b"x")
    not_empty = call(app, "DELETE", "/fresh")
    assert not_empty.status_code == 409
    assert error_code(not_empty) == "BucketNotEmpty"
    call(app, "DELETE", "/fresh/k")
    assert call(app, "DELETE", "/fresh").status_code == 204
    assert call(app, "HEAD", "/fresh").status_code == 404


def test_put_object_creates_its_bucket(app: ASGIApp) -> None:
    assert call(app, "PUT", "/implicit/k", content=b"x").status_code == 200
    assert call(app, "HEAD", "/implicit").status_code == 200


def test_list_objects_with_prefix(app: ASGIApp) -> None:
    for key in ("a/1.json", "a/2.json", "ab.json", "b/1.json"):
        call(app, "PUT", key_path("lst", key), content=key.encode())

    response = call(app, "GET", "/lst", params={"list-type": "2", "prefix": "a/"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/xml")
    result = ET.fromstring(response.content)
    assert result.tag == f"{NS}ListBucketResult"
    assert result.findtext(f"{NS}Name") == "lst"
    assert result.findtext(f"{NS}Prefix") == "a/"
    assert result.findtext(f"{NS}KeyCount") == "2"
    assert result.findtext(f"{NS}MaxKeys") == "1000"
    assert result.findtext(f"{NS}IsTruncated") == "false"
    contents = result.findall(f"{NS}Contents")
    assert [c.findtext(f"{NS}Key") for c in contents] == ["a/1.json", "a/2.json"]
    first = contents[0]
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first.findtext(f"{NS}LastModified") or ""
    )
    assert first.findtext(f"{NS}ETag") == f'"{hashlib.md5(b"a/1.json").hexdigest()}"'
    assert first.findtext(f"{NS}Size") == str(len(b"a/1.json"))
    assert first.findtext(f"{NS}StorageClass") == "STANDARD"

    every = ET.fromstring(call(app, "GET", "/lst").content)  # v1 request, answered all the same
    assert len(every.findall(f"{NS}Contents")) == 4

    grouped = ET.fromstring(call(app, "GET", "/lst?list-type=2&delimiter=/").content)
    assert [c.findtext(f"{NS}Key") for c in grouped.findall(f"{NS}Contents")] == ["ab.json"]
    prefixes = [p.text for p in grouped.iter(f"{NS}Prefix")][1:]  # the first is the request's
    assert prefixes == ["a/", "b/"]


def test_list_objects_pagination(app: ASGIApp) -> None:
    keys = [f"k{i:02d}" for i in range(5)]
    for key in keys:
        call(app, "PUT", f"/pages/{key}", content=b"x")
    seen: list[str] = []
    params = {"list-type": "2", "max-keys": "2"}
    for _ in range(5):
        page = ET.fromstring(call(app, "GET", "/pages", params=params).content)
        seen += [k.text or "" for k in page.iter(f"{NS}Key")]
        if page.findtext(f"{NS}IsTruncated") == "false":
            break
        params["continuation-token"] = page.findtext(f"{NS}NextContinuationToken") or ""
    assert seen == keys

    bad_token = call(app, "GET", "/pages", params={"list-type": "2", "continuation-token": "%%"})
    assert bad_token.status_code == 400
    assert error_code(bad_token) == "InvalidArgument"


def test_put_checksum_is_verified_and_echoed(app: ASGIApp, root: Path) -> None:
    body = b"checked"
    ok = call(
        app, "PUT", "/sums/k", content=body, headers={"x-amz-checksum-crc32": crc32_b64(body)}
    )
    assert ok.status_code == 200
    assert ok.headers["x-amz-checksum-crc32"] == crc32_b64(body)

    bad = call(app, "PUT", "/sums/bad", content=body, headers={"x-amz-checksum-crc32": "AAAAAA=="})
    assert bad.status_code == 400
    assert error_code(bad) == "BadDigest"
    assert call(app, "HEAD", "/sums/bad").status_code == 404


def test_checksum_header_only_with_checksum_mode(app: ASGIApp) -> None:
    body = bytes(range(256)) * 10
    call(app, "PUT", "/sums/blob", content=body)
    plain = call(app, "GET", "/sums/blob")
    assert "x-amz-checksum-crc32" not in plain.headers
    for method in ("GET", "HEAD"):
        enabled = call(app, method, "/sums/blob", headers={"x-amz-checksum-mode": "ENABLED"})
        assert enabled.headers["x-amz-checksum-crc32"] == crc32_b64(body)
    ranged = call(
        app, "GET", "/sums/blob", headers={"x-amz-checksum-mode": "ENABLED", "range": "bytes=2-5"}
    )
    assert ranged.status_code == 206
    assert ranged.content == body[2:6]
    assert ranged.headers["content-range"] == f"bytes 2-5/{len(body)}"
    assert "x-amz-checksum-crc32" not in ranged.headers  # a full-object checksum would not match


def aws_chunked_headers(decoded_length: int | None) -> dict[str, str]:
    headers = {
        "content-encoding": "aws-chunked",
        "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
        "x-amz-trailer": "x-amz-checksum-crc32",
        "content-type": "application/json",
    }
    if decoded_length is not None:
        headers["x-amz-decoded-content-length"] = str(decoded_length)
    return headers


def test_aws_chunked_body_is_decoded(app: ASGIApp, root: Path) -> None:
    data = b'{"part": 1, "more": "second chunk"}'
    first, second = data[:10], data[10:]
    body = (
        b"%x;chunk-signature=%s\r\n%s\r\n" % (len(first), b"ab" * 32, first)
        + b"%X;chunk-signature=%s\r\n%s\r\n" % (len(second), b"cd" * 32, second)
        + b"0;chunk-signature=" + b"ef" * 32 + b"\r\n"
        + b"x-amz-checksum-crc32:" + crc32_b64(data).encode() + b"\r\n"
        + b"x-amz-trailer-signature:" + b"01" * 32 + b"\r\n"
        + b"\r\n"
    )  # fmt: skip
    put = call(app, "PUT", "/chunks/doc.json", content=body, headers=aws_chunked_headers(len(data)))
    assert put.status_code == 200, put.text
    assert put.headers["etag"] == f'"{hashlib.md5(data).hexdigest()}"'

    got = call(app, "GET", "/chunks/doc.json")
    assert got.content == data
    assert got.headers["content-type"] == "application/json"
    assert "content-encoding" not in got.headers  # aws-chunked is transport framing only
    (stored,) = files_under(root)
    assert stored.read_bytes().endswith(b"\n" + data)


def test_aws_chunked_from_botocore_encoder(app: ASGIApp) -> None:
    data = b"0123456789" * 7  # several 16-byte chunks plus a short one
    encoded = AwsChunkedWrapper(
        io.BytesIO(data),
        checksum_cls=Crc32Checksum,
        checksum_name="x-amz-checksum-crc32",
        chunk_size=16,
    ).read()
    headers = aws_chunked_headers(len(data))
    headers["x-amz-content-sha256"] = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
    assert call(app, "PUT", "/chunks/boto", content=encoded, headers=headers).status_code == 200
    assert call(app, "GET", "/chunks/boto").content == data


GOOD_CHUNKED = b"5\r\nhello\r\n0\r\n\r\n"


@pytest.mark.parametrize(
    ("body", "decoded_length"),
    [
        (b"5\r\nhel", 5),  # truncated chunk
        (b"5\r\nhelloXX0\r\n\r\n", 5),  # chunk not followed by CRLF
        (b"zz\r\nhello\r\n0\r\n\r\n", 5),  # size is not hex
        (b"0x5\r\nhello\r\n0\r\n\r\n", 5),  # size spelled the Python way
        (b"5\r\nhello\r\n", 5),  # no terminating chunk
        (b"5\r\nhello\r\n0\r\n", 5),  # no final empty line
        (b"5\r\nhello\r\n0\r\nnot a trailer\r\n\r\n", 5),  # trailer without a colon
        (GOOD_CHUNKED + b"junk", 5),  # bytes after the end
        (GOOD_CHUNKED, 6),  # disagrees with x-amz-decoded-content-length
        (b"", None),  # nothing at all
    ],
)
def test_malformed_aws_chunked_is_400_and_stores_nothing(
    app: ASGIApp, root: Path, body: bytes, decoded_length: int | None
) -> None:
    call(app, "PUT", "/chunks")
    response = call(
        app, "PUT", "/chunks/bad", content=body, headers=aws_chunked_headers(decoded_length)
    )
    assert response.status_code == 400
    assert error_code(response) == "IncompleteBody"
    assert call(app, "HEAD", "/chunks/bad").status_code == 404
    assert files_under(root) == []


def test_aws_chunked_good_body_sanity(app: ASGIApp) -> None:
    # The control case for the malformed ones above.
    response = call(
        app, "PUT", "/chunks/good", content=GOOD_CHUNKED, headers=aws_chunked_headers(5)
    )
    assert response.status_code == 200
    assert call(app, "GET", "/chunks/good").content == b"hello"


def test_aws_chunked_with_wrong_trailer_checksum_is_rejected(app: ASGIApp, root: Path) -> None:
    body = b"5\r\nhello\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n"
    response = call(app, "PUT", "/chunks/k", content=body, headers=aws_chunked_headers(5))
    assert response.status_code == 400
    assert error_code(response) == "BadDigest"
    assert files_under(root) == []


def test_oversized_body_is_rejected_before_reading(app: ASGIApp, root: Path) -> None:
    headers = [(b"content-length", str(512 * 1024 * 1024 + 1).encode())]
    assert raw_call(app, "PUT", "/big/k", headers) == 400
    assert files_under(root) == []


def test_unsupported_operations_are_501(app: ASGIApp, root: Path) -> None:
    for method, path, headers in (
        ("POST", "/b-x/k?uploads", {}),
        ("PUT", "/b-x/k?partNumber=1&uploadId=abc", {}),
        ("PUT", "/b-x/k", {"x-amz-copy-source": "/other/key"}),
        ("GET", "/b-x/k?acl", {}),
        ("PUT", "/b-x?versioning", {}),
    ):
        response = call(app, method, path, content=b"x", headers=headers)
        assert response.status_code == 501, (method, path)
        assert error_code(response) == "NotImplemented"
        assert "not implemented" in (ET.fromstring(response.content).findtext("Message") or "")
    assert files_under(root) == []


def _scope(headers: list[tuple[bytes, bytes]], query: bytes = b"") -> Scope:
    return {
        "type": "http",
        "method": "GET",
        "path": "/b/k",
        "headers": headers,
        "query_string": query,
    }


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        (
            _scope([(b"authorization", b"AWS4-HMAC-SHA256 Credential=x/20240101/us-east-1/s3")]),
            True,
        ),
        (_scope([(b"Authorization", b"aws4-hmac-sha256 Credential=x")]), True),
        (_scope([(b"x-amz-content-sha256", b"UNSIGNED-PAYLOAD")]), True),
        (
            _scope([], b"X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=a&X-Amz-Signature=b"),
            True,
        ),
        (_scope([], b"x-amz-signature=abc"), True),
        (_scope([], b"X-Amz-Credential=abc"), True),
        (_scope([], b"x-id=PutObject"), True),
        (_scope([], b"foo=1&X-ID=GetObject"), True),
        (_scope([(b"authorization", b"Bearer eyJhbGciOi")]), False),
        (_scope([(b"authorization", b"apikey abc")], b"limit=10&offset=0"), False),
        (_scope([], b"id=abc&x-idx=1"), False),
        ({"type": "websocket", "headers": [(b"x-amz-content-sha256", b"x")]}, False),
    ],
)
def test_is_s3_request(scope: Scope, expected: bool) -> None:
    assert is_s3_request(scope) is expected


def test_plain_api_request_is_not_s3() -> None:
    scope = _scope([(b"authorization", b"Bearer token"), (b"accept", b"application/json")])
    scope["path"] = "/v1/jobs"
    assert is_s3_request(scope) is False


# --- boto3 against the app served for real -----------------------------------------------------


@pytest.fixture
def served(app: ASGIApp) -> Iterator[Served]:
    with Served(app) as server:
        yield server


def test_boto3_round_trip(served: Served) -> None:
    s3 = served.s3()
    body = b'{"program_id": "sampler", "params": {"shots": 1024}}' * 50
    put = s3.put_object(
        Bucket="qrmi", Key="jobs/in/ü 1.json", Body=body, ContentType="application/json"
    )
    assert put["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'

    got = s3.get_object(Bucket="qrmi", Key="jobs/in/ü 1.json")
    assert got["Body"].read() == body  # boto3 validates the CRC-32 it asked for while reading
    assert got["ContentType"] == "application/json"
    assert got["ChecksumCRC32"] == crc32_b64(body)

    head = s3.head_object(Bucket="qrmi", Key="jobs/in/ü 1.json")
    assert head["ContentLength"] == len(body)
    assert head["ETag"] == put["ETag"]

    s3.put_object(Bucket="qrmi", Key="jobs/out/a+b.json", Body=b"{}")
    listing = s3.list_objects_v2(Bucket="qrmi", Prefix="jobs/")
    assert [o["Key"] for o in listing["Contents"]] == ["jobs/in/ü 1.json", "jobs/out/a+b.json"]
    assert listing["KeyCount"] == 2
    assert listing["Contents"][0]["Size"] == len(body)

    s3.delete_object(Bucket="qrmi", Key="jobs/in/ü 1.json")
    with pytest.raises(ClientError) as missing:
        s3.get_object(Bucket="qrmi", Key="jobs/in/ü 1.json")
    assert missing.value.response["Error"]["Code"] == "NoSuchKey"
    with pytest.raises(ClientError) as missing_head:
        s3.head_object(Bucket="qrmi", Key="jobs/in/ü 1.json")
    assert missing_head.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_boto3_presigned_urls_through_plain_httpx(served: Served) -> None:
    s3 = served.s3()
    key = "presigned/result.json"
    put_url = s3.generate_presigned_url(
        "put_object", Params={"Bucket": "results", "Key": key}, ExpiresIn=60
    )
    get_url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": "results", "Key": key}, ExpiresIn=60
    )
    assert "X-Amz-Signature=" in put_url

    body = b'{"results": [1, 2, 3]}'
    assert httpx.put(put_url, content=body).status_code == 200
    got = httpx.get(get_url)
    assert got.status_code == 200
    assert got.content == body
    assert s3.get_object(Bucket="results", Key=key)["Body"].read() == body


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is needed to make a certificate for the TLS test")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


def test_boto3_aws_chunked_upload_over_tls(app: ASGIApp, tls_files: tuple[Path, Path]) -> None:
    # botocore sends PutObject as aws-chunked with a CRC-32 trailer only over https.
    cert, key = tls_files
    with Served(app, ssl_certfile=str(cert), ssl_keyfile=str(key)) as server:
        s3 = server.s3(verify=str(cert))
        sent: dict[str, str] = {}

        def capture(request: Any, **_: Any) -> None:
            for name, value in request.headers.items():
                sent[name.lower()] = value.decode() if isinstance(value, bytes) else value

        s3.meta.events.register("before-send.s3.PutObject", capture)
        body = b'{"chunked": true}' * 1000
        s3.put_object(Bucket="tls", Key="doc.json", Body=body, ContentType="application/json")
        assert "aws-chunked" in sent.get("content-encoding", "")
        assert sent.get("x-amz-trailer") == "x-amz-checksum-crc32"

        got = s3.get_object(Bucket="tls", Key="doc.json")
        received, content_type = got["Body"].read(), got["ContentType"]
        assert "ContentEncoding" not in got
        # The response pins its TLS socket open, and uvicorn's shutdown would wait for it.
        del got
        assert received == body
        assert content_type == "application/json"
