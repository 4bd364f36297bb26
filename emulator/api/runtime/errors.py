"""Runtime API errors: one table from domain error to (HTTP status, IBM code), one envelope."""

from __future__ import annotations

import uuid

from starlette.responses import JSONResponse, Response

from emulator.api.boundary import renderer
from emulator.api.jsonio import safe_text
from emulator.domain import errors as e
from emulator.services.access import UnknownApiKey

MORE_INFO = "https://quantum.cloud.ibm.com/docs/errors"

# (status, IBM code) per error class; looked up by the exception's MRO (the most specific wins).
STATUS_AND_CODE: dict[type[BaseException], tuple[int, str]] = {
    e.NotAuthenticated: (401, "1201"),
    UnknownApiKey: (401, "1201"),
    e.InstanceNotAccessible: (403, "1200"),
    e.UnknownBackendInRequest: (400, "1007"),
    e.BackendNotFound: (404, "1007"),
    e.ProgramNotFound: (404, "1300"),
    e.TooManyTags: (400, "1204"),
    e.InvalidRequest: (400, "1002"),
    e.JobNotFound: (404, "1291"),
    e.PendingJobsLimit: (429, "3458"),
    e.SubmissionRateLimited: (429, "1202"),
    e.SessionNotFound: (404, "1218"),
    e.SessionClosed: (409, "1217"),
    e.SessionBackendMismatch: (409, "1002"),
    e.UsageLimitReached: (409, "4317"),
    e.UsageExceedsLimit: (409, "4318"),
    e.BackendUnavailable: (409, "1004"),
    e.RequestTooLarge: (413, "1413"),
    e.RequestTimeout: (408, "1408"),
    e.BackendDataNotFound: (404, "1009"),
    e.JobNotCancellable: (409, "1306"),
    e.JobNotTerminal: (409, "1337"),
}

SOLUTIONS = {
    "1201": "Verify your credentials and try again.",
    "1200": "Use the Service-CRN of an instance your API key can access.",
    "1007": "Verify that the correct backend name was specified.",
    "1300": "Use one of the programs the emulator runs: sampler, estimator, executor, "
    "noise-learner.",
    "1204": "Remove some tags and try again.",
    "1002": "Correct the field named in the message and resubmit.",
    "1413": "Send a smaller request (see --max-request-mb).",
    "1009": "Ask for a date after the backend's last calibration.",
    "1291": "Verify the job ID is correct, and that you have the correct access permissions.",
    "1306": "Only queued or running jobs can be cancelled.",
    "1337": "Postpone job deletion until the job is in a terminal state.",
    "1217": "Open a new session (or batch) and submit the job to it.",
    "3458": "Wait for a pending job to finish (or cancel one), then submit again.",
    "1202": "Reduce the request rate and try again after Retry-After seconds.",
    "1004": "Use another backend, or wait until this one is online again.",
    "4318": "Ask for a limit of at least the usage already consumed this period.",
    "4317": "Wait for the next usage period, or ask for a higher limit (see --usage-limits).",
    "1218": "Verify the session ID is correct, and that you use the instance that created it.",
}


def envelope(status: int, code: str, message: str, solution: str = "") -> JSONResponse:
    """IBM's ErrorContainer, plus the fields of GenericErrorDto and `status_code`."""
    message = safe_text(message)  # it may echo client input that UTF-8 cannot encode
    body = {
        "errors": [
            {"code": code, "message": message, "solution": solution, "more_info": MORE_INFO}
        ],
        "trace": uuid.uuid4().hex,
        "status_code": status,
    }
    return JSONResponse(body, status_code=status)


def _build(status: int, code: str, message: str, exc: Exception) -> Response:
    response = envelope(status, code, message, SOLUTIONS.get(code, ""))
    if isinstance(exc, e.TooManyRequests):
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


render = renderer(STATUS_AND_CODE, _build)
"""Any exception raised by a Runtime route, in the Runtime envelope."""
