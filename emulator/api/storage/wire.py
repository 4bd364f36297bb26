"""S3 wire formats: the aws-chunked request body and the XML documents the store answers with."""

from __future__ import annotations

import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import quote

from emulator.api.storage.store import ObjectMeta

S3_NAMESPACE = "http://s3.amazonaws.com/doc/2006-03-01/"
_XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'
_CHUNK_SIZE = re.compile(rb"[0-9a-fA-F]{1,16}")
# Characters XML 1.0 cannot carry at all, not even as character references.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_unsafe(text: str) -> str | None:
    """None when XML 1.0 can carry `text`; else a description of its first character that
    cannot (a control character other than tab, newline and CR, a lone surrogate,
    U+FFFE or U+FFFF)."""
    found = _NOT_XML.search(text)
    if found is None:
        return None
    return f"U+{ord(found.group()):04X} at position {found.start()}"


class UnsafeXml(ValueError):
    """A value an XML document would have to carry, but XML 1.0 cannot."""


class ChunkedBodyError(ValueError):
    """An aws-chunked body that does not follow the format."""


def decode_aws_chunked(body: bytes | bytearray) -> tuple[bytes, dict[str, str]]:
    """Decode an aws-chunked payload into its data and its trailers (lower-case names).

    Format: `<hex-size>[;chunk-signature=...]\\r\\n<data>\\r\\n` repeated, a zero-size chunk,
    optional `name:value\\r\\n` trailer lines, then an empty line. Signatures are not checked.
    """
    view = memoryview(body)
    data = bytearray()
    pos = 0
    while True:
        eol = body.find(b"\r\n", pos)
        if eol < 0:
            raise ChunkedBodyError("a chunk header is not terminated by CRLF")
        size_field = bytes(view[pos:eol]).split(b";", 1)[0]
        # int(..., 16) alone would also take "0x10", " 1_0 " and other non-S3 spellings
        if _CHUNK_SIZE.fullmatch(size_field) is None:
            raise ChunkedBodyError(f"invalid chunk size {size_field[:32]!r}")
        size = int(size_field, 16)
        pos = eol + 2
        if size == 0:
            break
        end = pos + size
        if body[end : end + 2] != b"\r\n":
            raise ChunkedBodyError("a chunk is shorter than its declared size or lacks its CRLF")
        data += view[pos:end]
        pos = end + 2

    trailers: dict[str, str] = {}
    while True:
        eol = body.find(b"\r\n", pos)
        if eol < 0:
            raise ChunkedBodyError("the trailer section is not terminated by an empty line")
        line = bytes(view[pos:eol])
        pos = eol + 2
        if not line:
            break
        name, sep, value = line.partition(b":")
        if not sep or not name.strip():
            raise ChunkedBodyError(f"malformed trailer line {line[:64]!r}")
        trailers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
    if pos != len(body):
        raise ChunkedBodyError("unexpected bytes after the end of the chunked body")
    return bytes(data), trailers


def iso8601(epoch: float) -> str:
    """S3's timestamp form in XML documents: `2024-05-01T12:00:00.000Z`."""
    millis = int(epoch * 1000) % 1000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + f".{millis:03d}Z"


def _document(root: ET.Element) -> bytes:
    body = ET.tostring(root, encoding="utf-8", xml_declaration=False)
    # ElementTree writes a CR in text as is, and every XML parser reads that back as LF; as a
    # character reference it survives. Our markup never contains a CR, only text does.
    return _XML_DECLARATION + body.replace(b"\r", b"&#13;")


def _child(parent: ET.Element, tag: str, text: str | int | None = None) -> ET.Element:
    element = ET.SubElement(parent, tag)
    if text is not None:
        element.text = str(text).lower() if isinstance(text, bool) else str(text)
    return element


def error_document(code: str, message: str, request_id: str, fields: dict[str, str]) -> bytes:
    """An S3 `<Error>` document; `fields` (Key, BucketName, ...) follow the Message."""
    root = ET.Element("Error")
    _child(root, "Code", code)
    _child(root, "Message", _xml_safe(message))
    for name, value in fields.items():
        # Echoed request parts (a key, a bucket name) may hold anything; the error must parse.
        _child(root, name, _xml_safe(value))
    _child(root, "RequestId", request_id)
    return _document(root)


def _xml_safe(text: str) -> str:
    return _NOT_XML.sub("\ufffd", text)


@dataclass(frozen=True)
class Listing:
    """One page of a ListObjects answer, already paginated and grouped."""

    bucket: str
    prefix: str
    delimiter: str | None
    max_keys: int
    contents: Sequence[ObjectMeta]
    common_prefixes: Sequence[str]
    truncated: bool
    url_encoded: bool
    version: int  # 1 or 2
    start_after: str | None = None
    continuation_token: str | None = None
    next_continuation_token: str | None = None
    marker: str | None = None
    next_marker: str | None = None


def list_objects_document(listing: Listing) -> bytes:
    """A `ListBucketResult` document for ListObjectsV2 (or V1 when `listing.version == 1`)."""

    def name(value: str) -> str:
        # With encoding-type=url the client percent-decodes these fields; "+" must survive it.
        if listing.url_encoded:
            return quote(value, safe="/", errors="surrogatepass")
        problem = xml_unsafe(value)
        if problem is not None:
            raise UnsafeXml(problem)
        return value

    root = ET.Element("ListBucketResult", xmlns=S3_NAMESPACE)
    _child(root, "Name", listing.bucket)
    _child(root, "Prefix", name(listing.prefix))
    if listing.version == 1:
        _child(root, "Marker", name(listing.marker or ""))
        if listing.next_marker is not None:
            _child(root, "NextMarker", name(listing.next_marker))
    else:
        if listing.start_after is not None:
            _child(root, "StartAfter", name(listing.start_after))
        if listing.continuation_token is not None:
            _child(root, "ContinuationToken", listing.continuation_token)
        if listing.next_continuation_token is not None:
            _child(root, "NextContinuationToken", listing.next_continuation_token)
        _child(root, "KeyCount", len(listing.contents) + len(listing.common_prefixes))
    _child(root, "MaxKeys", listing.max_keys)
    if listing.delimiter is not None:
        _child(root, "Delimiter", name(listing.delimiter))
    if listing.url_encoded:
        _child(root, "EncodingType", "url")
    _child(root, "IsTruncated", listing.truncated)
    for meta in listing.contents:
        entry = _child(root, "Contents")
        _child(entry, "Key", name(meta.key))
        _child(entry, "LastModified", iso8601(meta.mtime))
        _child(entry, "ETag", f'"{meta.etag}"')
        _child(entry, "Size", meta.size)
        _child(entry, "StorageClass", "STANDARD")
    for prefix in listing.common_prefixes:
        _child(_child(root, "CommonPrefixes"), "Prefix", name(prefix))
    return _document(root)


def list_buckets_document(buckets: Iterable[tuple[str, float]]) -> bytes:
    """A `ListAllMyBucketsResult` document."""
    root = ET.Element("ListAllMyBucketsResult", xmlns=S3_NAMESPACE)
    owner = _child(root, "Owner")
    _child(owner, "ID", "emulator")
    _child(owner, "DisplayName", "emulator")
    listed = _child(root, "Buckets")
    for bucket, created in buckets:
        entry = _child(listed, "Bucket")
        _child(entry, "Name", bucket)
        _child(entry, "CreationDate", iso8601(created))
    return _document(root)


def location_document() -> bytes:
    """GetBucketLocation's answer: empty, which S3 clients read as us-east-1."""
    return _document(ET.Element("LocationConstraint", xmlns=S3_NAMESPACE))
