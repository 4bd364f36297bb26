"""The S3 error the store's handlers raise; the app turns it into an `<Error>` document."""

from __future__ import annotations


class S3Error(Exception):
    """An S3 error response: status, S3 error code and the document's extra fields."""

    def __init__(self, status: int, code: str, message: str, **fields: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields


def access_denied(message: str = "Access Denied", **fields: str) -> S3Error:
    return S3Error(403, "AccessDenied", message, **fields)
