"""The control plane's errors: one small JSON envelope, `{"error": {status, message, field}}`."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from emulator.domain import errors as e
from emulator.services.control import RuleNotFound

STATUS: list[tuple[type[Exception], int]] = [
    (e.InvalidRequest, 400),
    (e.MalformedBody, 400),
    (e.RequestTooLarge, 413),
    (e.RequestTimeout, 408),
    (e.JobNotFound, 404),
    (e.BackendNotFound, 404),
    (RuleNotFound, 404),
]


def envelope(status: int, message: str, field: str | None = None) -> JSONResponse:
    error: dict[str, object] = {"status": status, "message": message}
    if field is not None:
        error["field"] = field
    return JSONResponse({"error": error}, status_code=status)


def render(request: Request, exc: Exception) -> Response:
    """Map any exception raised by an admin route to the envelope."""
    for cls, status in STATUS:
        if isinstance(exc, cls):
            return envelope(status, str(exc), getattr(exc, "field", None))
    if isinstance(exc, HTTPException):
        return envelope(exc.status_code, str(exc.detail))
    return envelope(500, f"Internal error: {type(exc).__name__}")
