"""Direct Access errors: one table from domain error to (HTTP status, IBM code), one envelope.

The envelope is IBM's: `status_code`, `title`, `trace`, `correlation_id`, and
`errors[{code, message, solution, more_info}]` (qrmi requires `errors`, `status_code`, `trace`).
"""

from __future__ import annotations

import secrets
import string
import uuid

from starlette.responses import JSONResponse

from emulator.api.boundary import renderer
from emulator.api.jsonio import safe_text
from emulator.domain import errors as e
from emulator.services.access import UnknownApiKey

MORE_INFO = "https://cloud.ibm.com/apidocs/quantum-computing#error-handling"

# Most specific classes first: the first isinstance match wins. Status codes and codes are the
# ones IBM documents for this API (and its own simulators use).
STATUS_AND_CODE: dict[type[BaseException], tuple[int, str]] = {
    e.NotAuthenticated: (401, "1201"),
    UnknownApiKey: (401, "1201"),
    e.InstanceNotAccessible: (401, "1200"),
    e.RequestTooLarge: (413, "1413"),
    e.RequestTimeout: (408, "1408"),
    e.MalformedBody: (400, "1400"),
    e.InvalidRequest: (422, "1422"),
    e.BackendNotFound: (404, "1216"),
    e.BackendReserved: (423, "1233"),
    e.BackendUnavailable: (409, "1004"),
    e.DuplicateJobId: (409, "1231"),
    e.LanesFull: (429, "1232"),
    e.JobNotFound: (404, "1291"),
    e.JobNotCancellable: (409, "1306"),
    e.JobNotTerminal: (409, "1337"),
}

SOLUTIONS = {
    "1200": "Try again or contact support.",
    "1201": "Verify your credentials and try again.",
    "1216": "Use a different backend.",
    "1004": "Use another backend, or wait until this one is online again.",
    "1231": "Check that the provided id is unique or delete the job and try again.",
    "1232": "Delete completed jobs and/or wait for other clients to delete jobs.",
    "1233": "",
    "1291": "Verify the job ID is correct, and that you have the correct access permissions.",
    "1306": "Try again or contact support.",
    "1337": "Postpone job deletion until job is in a terminal state.",
    "1422": "Correct the field named in the message and resubmit.",
}

_CORRELATION_ALPHABET = string.ascii_lowercase + string.digits


def envelope(status: int, code: str, message: str, solution: str = "") -> JSONResponse:
    message = safe_text(message)  # it may echo client input that UTF-8 cannot encode
    body = {
        "status_code": status,
        "title": message,
        "trace": str(uuid.uuid4()),
        "correlation_id": "".join(secrets.choice(_CORRELATION_ALPHABET) for _ in range(20)),
        "errors": [
            {"code": code, "message": message, "solution": solution, "more_info": MORE_INFO}
        ],
    }
    return JSONResponse(body, status_code=status)


render = renderer(
    STATUS_AND_CODE,
    lambda status, code, message, exc: envelope(status, code, message, SOLUTIONS.get(code, "")),
)
"""Any exception raised by a Direct Access route, in the Direct Access envelope."""
