"""Session rules as pure functions: when a session closes, and open/active/inactive."""

from __future__ import annotations

from datetime import datetime, timedelta

from emulator.domain.sessions import (
    SessionJobs,
    SessionPolicy,
    SessionState,
    closing_reason,
    open_state,
)

T0 = datetime(2026, 1, 1, 12, 0, 0)
POLICY = SessionPolicy(default_max_ttl=600, interactive_ttl=60, idle_close=1800)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_max_ttl_counts_from_the_first_job_start_and_fails_queued_jobs() -> None:
    jobs = SessionJobs(pending=2, first_started=at(100), last_created=at(10))
    assert closing_reason(True, T0, 600, jobs, POLICY, at(699)) is None
    reason, fail_queued = closing_reason(True, T0, 600, jobs, POLICY, at(700)) or ("", False)
    assert "max_ttl" in reason and fail_queued


def test_a_session_that_never_ran_is_not_expired_by_max_ttl() -> None:
    jobs = SessionJobs(pending=1, last_created=at(5))
    assert closing_reason(True, T0, 600, jobs, POLICY, at(1000)) is None


def test_not_accepting_closes_when_no_job_is_left() -> None:
    busy = SessionJobs(pending=1, first_started=at(1))
    assert closing_reason(False, T0, 600, busy, POLICY, at(10)) is None
    done = SessionJobs(pending=0, first_started=at(1), last_finished=at(5))
    reason, fail_queued = closing_reason(False, T0, 600, done, POLICY, at(10)) or ("", True)
    assert "client" in reason and not fail_queued


def test_idle_sessions_close_after_the_idle_timeout() -> None:
    assert closing_reason(True, T0, 28800, SessionJobs(), POLICY, at(1799)) is None
    assert closing_reason(True, T0, 28800, SessionJobs(), POLICY, at(1800)) is not None
    recent = SessionJobs(first_started=at(1000), last_finished=at(1500), last_created=at(999))
    assert closing_reason(True, T0, 28800, recent, POLICY, at(1800)) is None


def test_open_active_inactive() -> None:
    assert open_state(SessionJobs(pending=3), 60, at(5)) is SessionState.OPEN
    running = SessionJobs(pending=1, first_started=at(1))
    assert open_state(running, 60, at(500)) is SessionState.ACTIVE
    ended = SessionJobs(first_started=at(1), last_finished=at(10))
    assert open_state(ended, 60, at(69)) is SessionState.ACTIVE
    assert open_state(ended, 60, at(70)) is SessionState.INACTIVE
