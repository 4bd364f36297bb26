"""One settings object, read once from CLI flags and `EMULATOR_*` environment variables.

Precedence: explicit CLI flag > environment variable > default. Every setting has exactly one
environment variable, named `EMULATOR_` + the upper-cased field name, so documentation and code
cannot drift (a test checks both directions).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

DEFAULT_INSTANCE_CRN = (
    "crn:v1:bluemix:public:quantum-computing:us-east:a/emulator:"
    "00000000-0000-4000-8000-000000000000::"
)
DEFAULT_BACKENDS = ("ibm_brisbane", "ibm_fez", "fake_manila")


class SettingsError(ValueError):
    """A setting has a value the emulator cannot use."""


@dataclass(frozen=True)
class Instance:
    """A Qiskit Runtime service instance: jobs belong to exactly one."""

    crn: str
    name: str
    plan: str = "open"

    @property
    def region(self) -> str:
        parts = self.crn.split(":")
        return parts[5] if len(parts) > 5 and parts[5] else "us-east"


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def parse_instances(entries: list[str]) -> tuple[Instance, ...]:
    """`name=crn` or a bare CRN (named after its GUID segment) per entry."""
    out: list[Instance] = []
    for entry in entries:
        if "=" in entry:
            name, crn = (p.strip() for p in entry.split("=", 1))
        else:
            crn = entry
            guid = crn.split(":")[7] if len(crn.split(":")) > 7 else crn
            name = f"instance-{guid[:8]}" if guid else "instance"
        if not crn.startswith("crn:"):
            raise SettingsError(f"instance {entry!r}: expected a CRN starting with 'crn:'")
        out.append(Instance(crn=crn, name=name))
    if len({i.crn for i in out}) != len(out):
        raise SettingsError("instances: duplicate CRN")
    return tuple(out)


@dataclass(frozen=True)
class Settings:
    """Everything configurable. Field names are the CLI flag names (with dashes) and env names."""

    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path(".emulator")
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    database_url: str = ""  # empty: SQLite file `emulator.db` in data_dir
    backends: tuple[str, ...] = DEFAULT_BACKENDS
    instances: tuple[str, ...] = (f"emulator-instance={DEFAULT_INSTANCE_CRN}",)
    api_keys: tuple[str, ...] = ()  # empty: IAM accepts any API key
    token_ttl: int = 3600  # seconds; IBM IAM tokens live one hour
    default_shots: int = 4096
    job_max_attempts: int = 2  # runs of a job interrupted by a server crash before it fails
    log_level: str = "info"
    max_request_mb: int = 100  # larger request bodies are refused with 413
    status_hold_ms: int = 250  # a status poll of an unfinished job waits this long for it to end

    def __post_init__(self) -> None:
        # 0 workers is allowed: jobs are accepted and stay Queued (API-only use, tests).
        if self.workers < 0:
            raise SettingsError("workers: must be >= 0")
        if not (0 < self.port < 65536):
            raise SettingsError("port: must be 1..65535")
        if not self.backends:
            raise SettingsError("backends: at least one backend is required")
        parse_instances(list(self.instances))

    @property
    def instance_list(self) -> tuple[Instance, ...]:
        return parse_instances(list(self.instances))

    @property
    def default_instance(self) -> Instance:
        return self.instance_list[0]

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'emulator.db').resolve()}"

    @classmethod
    def from_sources(
        cls, cli: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
    ) -> Settings:
        """Merge CLI values (None = not given) over `EMULATOR_*` variables over defaults."""
        cli = dict(cli or {})
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw: Any = cli.get(f.name)
            if raw is None:
                raw = environ.get(env_name(f.name))
            if raw is None:
                continue
            values[f.name] = _coerce(f.name, raw, f.type)
        return cls(**values)


def env_name(field_name: str) -> str:
    """The environment variable of a setting."""
    return "EMULATOR_" + field_name.upper()


def setting_names() -> list[str]:
    return [f.name for f in fields(Settings)]


def _coerce(name: str, raw: Any, annotation: Any) -> Any:
    text = str(annotation)
    try:
        if text == "int":
            return int(raw)
        if text == "Path":
            return Path(raw)
        if text.startswith("tuple"):
            items = raw if isinstance(raw, (list, tuple)) else _split(str(raw))
            return tuple(str(i) for i in items)
        return str(raw)
    except ValueError as exc:
        raise SettingsError(f"{name}: {exc}") from exc
