"""Presigned-URL object I/O for Direct Access jobs: plain HTTP, so any S3-compatible store works."""

from __future__ import annotations

import httpx

TIMEOUT_S = 30.0
MAX_INPUT_BYTES = 512 * 1024 * 1024


class StorageError(Exception):
    """An object could not be read or written; the message says which and why."""


def fetch_text(url: str, what: str, limit: int = MAX_INPUT_BYTES) -> str:
    """GET a presigned URL; any transport error or non-2xx answer is a StorageError.

    Redirects are not followed (httpx's default): a storage URL was checked when the job was
    submitted, and a redirect could lead anywhere. Errors name the size and status only.
    """
    try:
        with httpx.Client(timeout=TIMEOUT_S) as client, client.stream("GET", url) as response:
            if not response.is_success:
                raise StorageError(f"reading the {what} failed: HTTP {response.status_code}")
            chunks: list[bytes] = []
            size = 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > limit:
                    raise StorageError(f"the {what} is larger than {limit} bytes")
                chunks.append(chunk)
    except httpx.HTTPError as exc:
        raise StorageError(f"reading the {what} failed: {type(exc).__name__}: {exc}") from None
    try:
        return b"".join(chunks).decode("utf-8")
    except UnicodeDecodeError:
        raise StorageError(f"the {what} ({size} bytes) is not UTF-8 text") from None


def put_text(url: str, body: str, what: str, content_type: str = "application/json") -> None:
    """PUT to a presigned URL; any transport error or non-2xx answer is a StorageError."""
    try:
        with httpx.Client(timeout=TIMEOUT_S) as client:
            response = client.put(
                url, content=body.encode(), headers={"Content-Type": content_type}
            )
    except httpx.HTTPError as exc:
        raise StorageError(f"writing the {what} failed: {type(exc).__name__}: {exc}") from None
    if not response.is_success:
        raise StorageError(f"writing the {what} failed: HTTP {response.status_code}")
