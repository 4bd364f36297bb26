"""What a Direct Access job leaves in its storage besides results: the log object."""

from __future__ import annotations

from emulator.domain.jobs import JobEvent, utcnow

_LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40, "CRITICAL": 50}


def render_direct_access_logs(
    events: list[JobEvent], extra: list[tuple[str, str]], min_level: str
) -> str:
    """A Direct Access log object: `%(asctime)s %(levelname)-9s %(message)s` lines at or
    above the job's `log_level`; `extra` (level, message) lines follow the stored events."""
    threshold = _LEVELS.get(min_level.upper(), 30)
    moment = utcnow()
    records = [(e.at, e.level, e.message) for e in events] + [(moment, lv, m) for lv, m in extra]
    lines = []
    for at, level, message in records:
        if _LEVELS.get(level.upper(), 20) >= threshold:
            stamp = at.strftime("%Y-%m-%d %H:%M:%S") + f",{at.microsecond // 1000:03d}"
            lines.append(f"{stamp} {level.upper():<9} {message}\n")
    return "".join(lines)
