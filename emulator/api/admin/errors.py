"""The control plane's errors: one small JSON envelope, `{"error": {status, message, field}}`."""

from __future__ import annotations

from starlette.responses import JSONResponse

from emulator.api.boundary import renderer
from emulator.domain import errors as e
from emulator.services.control import RuleNotFound

# (status, code) per error class, looked up by the exception's MRO; the envelope has no code.
STATUS: dict[type[BaseException], tuple[int, str]] = {
    e.InvalidRequest: (400, "400"),
    e.RequestTooLarge: (413, "413"),
    e.RequestTimeout: (408, "408"),
    e.JobNotFound: (404, "404"),
    e.BackendNotFound: (404, "404"),
    RuleNotFound: (404, "404"),
}


def envelope(status: int, message: str, field: str | None = None) -> JSONResponse:
    error: dict[str, object] = {"status": status, "message": message}
    if field is not None:
        error["field"] = field
    return JSONResponse({"error": error}, status_code=status)


render = renderer(
    STATUS,
    lambda status, code, message, exc: envelope(
        status,
        message if status < 500 else f"Internal error: {type(exc).__name__}",
        getattr(exc, "field", None),
    ),
)
"""Any exception raised by an admin route, in the control plane's envelope."""
