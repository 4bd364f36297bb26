"""Errors raised by the program runners, and the IBM reason codes recorded on failed jobs.

Codes come from IBM's error registry (quantum.cloud.ibm.com/docs/errors); the client only
prints them (`Error code <rc>; <reason>`) and compares against 1305, so any code is safe as long
as it is not 1305 (which the client turns into `RuntimeJobMaxTimeoutError`).
"""

from __future__ import annotations

from emulator.domain.outcomes import EXECUTION_FAILED

# "Error in the validation process of the job": input that passed the request-path checks but
# turned out unusable once the worker decoded it fully (e.g. a samplex that cannot be finalised).
REASON_INVALID_JOB = 1002
# "Job failed during execution": the simulator refused or aborted the circuits (e.g. Aer needs
# more memory than the host has).
REASON_EXECUTION_FAILED = EXECUTION_FAILED
# Generic internal failure; for the worker to use when a runner raises anything unexpected.
REASON_INTERNAL_ERROR = 1500


class InvalidParams(Exception):
    """Client mistake found before a job is stored; the API answers 400.

    `field` is a dotted/indexed path such as `params.pubs[0][1]`; `message` is human text.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class ProgramFailure(Exception):
    """A job that cannot complete for a reason the user should see.

    The worker records `reason`, `reason_code` and `solution` on the Failed job.
    """

    def __init__(
        self,
        reason: str,
        reason_code: int = REASON_EXECUTION_FAILED,
        solution: str = "Reduce the size of the circuits and run the job again.",
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.reason_code = reason_code
        self.solution = solution
        self.log: list[str] = []
        """What the program logged before it failed (set by `aer.collected_warnings`)."""
