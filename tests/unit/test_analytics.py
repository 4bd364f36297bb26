"""Usage analytics as pure functions: IBM's 21 metrics and their groupings."""

from __future__ import annotations

from datetime import datetime, timedelta

from emulator.domain.analytics import UsageRow, grouped, grouped_by_date, metrics

T0 = datetime(2026, 12, 1, 10, 0, 0)


def _row(
    seconds: float, mode: str | None = None, session: str | None = None, **kw: object
) -> UsageRow:
    fields: dict[str, object] = {
        "instance": "crn-a",
        "backend": "ibm_fez",
        "plan": "open",
        "subscription_id": "sub",
        "mode": mode,
        "session_id": session,
        "seconds": seconds,
        "created_at": T0,
        "running_at": T0 + timedelta(seconds=2),
        "finished_at": T0 + timedelta(seconds=3),
    }
    fields.update(kw)
    return UsageRow(**fields)  # type: ignore[arg-type]


def test_metrics_split_sessions_batches_and_individual_jobs_in_milliseconds() -> None:
    rows = [
        _row(1.0, "dedicated", "s1"),
        _row(2.0, "dedicated", "s1"),
        _row(4.0, "batch", "b1"),
        _row(0.5),
        _row(1.5, running_at=T0 + timedelta(seconds=6)),
        _row(9.0, running_at=None),  # never ran (cancelled while queued): no queue time
    ]
    m = metrics(rows)
    assert m["usage"] == 18_000 and m["jobs"] == 6
    assert m["sessions"] == 2 and m["sessions_usage"] == 7_000
    assert m["avg_sessions_usage"] == 3_500 and m["max_sessions_usage"] == 4_000
    assert m["dedicated_sessions"] == 1 and m["dedicated_sessions_usage"] == 3_000
    assert m["batch_sessions"] == 1 and m["max_batch_sessions_usage"] == 4_000
    assert m["individual_jobs"] == 3 and m["individual_jobs_usage"] == 11_000
    assert m["max_individual_jobs_usage"] == 9_000
    assert m["queue_time"] == 2_000 * 4 + 6_000 and m["max_queue_time"] == 6_000
    assert len(m) == 21
    assert metrics([])["avg_queue_time"] == 0.0


def test_groups_by_key_and_by_day() -> None:
    rows = [
        _row(1.0, backend="ibm_fez"),
        _row(2.0, backend="ibm_brisbane"),
        _row(3.0, backend="ibm_fez", finished_at=T0 + timedelta(days=1)),
    ]
    by_backend = {g["key"]: g["usage"] for g in grouped(rows, "backend")}
    assert by_backend == {"ibm_brisbane": 2_000, "ibm_fez": 4_000}
    assert [g["key"] for g in grouped(rows, "user_id")] == [None]  # no users in the emulator
    days = grouped_by_date(rows, "instance", T0 - timedelta(hours=1), T0 + timedelta(days=3))
    assert [d["jobs"] for d in days] == [2, 1]
    assert days[0]["interval_start"] == T0 - timedelta(hours=1)  # clipped to the interval
    assert days[1]["interval_end"] - days[1]["interval_start"] == timedelta(days=1)
