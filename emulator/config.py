"""One settings object, read once from CLI flags and `EMULATOR_*` environment variables.

Precedence: explicit CLI flag > environment variable > default. Every setting has exactly one
environment variable, named `EMULATOR_` + the upper-cased field name, so documentation and code
cannot drift (a test checks both directions).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

from emulator.domain import ids
from emulator.domain.admission import (
    InstanceLimits,
    LaneLimit,
    LaneRule,
    Reservation,
    UsageAction,
    UsageLimits,
    parse_reservation,
    parse_usage_limits,
)
from emulator.domain.methods import MethodSetting
from emulator.domain.sessions import SessionPolicy

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
    def plan_id(self) -> str:
        return ids.plan_id(self.plan)

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


def _setting(default: Any, help: str) -> Any:
    """A settings field with its help text (shown by `serve --help`, documented in README)."""
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class Settings:
    """Everything configurable. Field names are the CLI flag names (with dashes) and env names."""

    host: str = _setting("127.0.0.1", "bind address")
    port: int = _setting(8000, "port")
    intercept_port: int = _setting(
        0,
        "port of the interception proxy that answers IBM's own URLs (HTTPS_PROXY; `env "
        "--intercept` prints the rest); 0: off",
    )
    data_dir: Path = _setting(Path(".emulator"), "where the SQLite store and object store live")
    workers: int = field(
        default_factory=lambda: os.cpu_count() or 1,
        metadata={"help": "simulation processes; 0 keeps jobs Queued", "default": "CPU count"},
    )
    database_url: str = _setting("", "SQLAlchemy URL instead of the SQLite file in the data dir")
    backends: tuple[str, ...] = _setting(
        DEFAULT_BACKENDS, "served backends, comma-separated: name or name=snapshot"
    )
    instances: tuple[str, ...] = _setting(
        (f"emulator-instance={DEFAULT_INSTANCE_CRN}",),
        "instances, comma-separated name=CRN; the first is the default",
    )
    api_keys: tuple[str, ...] = _setting(
        (), "accepted API keys, comma-separated: key or key=instance|instance (default: any key)"
    )
    token_ttl: int = _setting(3600, "IAM token lifetime in seconds (IBM: one hour)")
    admin_token: str = _setting(
        "",
        "token the control plane requires (Authorization: Bearer TOKEN) for changes and for "
        "reads of every tenant's jobs, sessions, journal and rules; /health, the summary of "
        "/info and the dashboard page stay open; empty: none",
    )
    job_max_attempts: int = _setting(2, "runs of a job interrupted by a crash before it fails")
    worker_stale_seconds: int = _setting(
        10, "a Running job without a heartbeat this long lost its worker (nodes beat 5x as often)"
    )
    log_level: str = _setting("info", "server log level (debug adds a line per request)")
    lanes_per_backend: int = _setting(5, "Direct Access execution lanes per backend (429 beyond)")
    lane_rule: str = _setting(
        "all", "which Direct Access jobs hold a lane: all (until deleted, as IBM) or running"
    )
    reservations: tuple[str, ...] = _setting(
        (),
        "Direct Access reservations, comma-separated: "
        "backend=NAME;start=ISO;end=ISO[;instance=NAME]",
    )
    request_read_timeout: int = _setting(30, "seconds to receive a request body before 408")
    max_request_mb: int = _setting(100, "largest accepted request body in MiB (413 beyond)")
    status_hold_ms: int = _setting(
        250, "how long a status poll of an unfinished job waits for it to end; 0 disables"
    )
    max_pending_jobs: int = _setting(
        0, "Runtime jobs an instance may have Queued or Running at once (429 beyond); 0: no limit"
    )
    jobs_per_minute: int = _setting(
        0, "Runtime job submissions per instance per minute (429 beyond); 0: no limit"
    )
    usage_limits: tuple[str, ...] = _setting(
        (),
        "execution seconds per calendar month, comma-separated: SECONDS for every instance "
        "or NAME=SECONDS for one; none: unlimited",
    )
    usage_limit_action: str = _setting(
        "refuse",
        "what an instance past its usage limit gets: refuse (POST /jobs answers 409) or hold "
        "(jobs are accepted and stay Queued)",
    )
    session_max_ttl: int = _setting(
        28800, "a session's max_ttl in seconds when POST /sessions gives none (IBM: 8 hours)"
    )
    session_interactive_ttl: int = _setting(
        60, "seconds a session stays active after a job ends, waiting for the next one"
    )
    session_idle_timeout: int = _setting(
        1800, "seconds without jobs after which a session closes (IBM: 30 minutes)"
    )
    node_name: str = _setting(
        "", "this node's name in the shared request journal; empty: HOSTNAME:PORT"
    )
    simulation_method: tuple[str, ...] = _setting(
        ("auto",),
        "simulation method, comma-separated: auto, statevector, matrix_product_state, "
        "stabilizer or density_matrix for every backend, or BACKEND=METHOD for one (auto: "
        "statevector, or density matrix where Aer's rule takes it, up to 12 qubits; wider, "
        "stabilizer for Clifford circuits and matrix product state for weakly entangled ones "
        "the statevector cannot take; the job log says which ran and why)",
    )
    device: str = _setting(
        "CPU",
        "where Aer's statevector jobs run: CPU, or GPU (needs qiskit-aer-gpu and a GPU Aer can "
        "see; checked at start)",
    )
    max_job_seconds: int = _setting(
        300,
        "a job whose simulation is estimated (low) to take longer fails before it runs, with a "
        "reason naming its size and what would make it run; 0: no limit (max_execution_time "
        "still stops a running job)",
    )
    # -- hardening: input bounds, connections, storage, control plane ----------------------
    max_decoded_mb: int = _setting(
        0,
        "largest decoded size of one submission's arrays, circuits and programs in MiB "
        "(compressed arrays, QPY, QASM; 400 beyond); 0: twice --max-request-mb",
    )
    worker_memory_mb: int = _setting(
        0,
        "memory a simulation process may use for a job in MiB (Aer refuses larger states; an "
        "address-space limit above the process's own size backs it up; a job past it fails "
        "with a reason saying so); 0: this machine's memory divided by the workers",
    )
    keep_alive_timeout: int = _setting(
        # Longer than clients keep idle pooled connections (httpx: 5 s), so the client, not
        # the server, closes them: a close racing the client's next request loses it.
        75, "seconds an idle keep-alive connection stays open between requests"
    )
    header_read_timeout: int = _setting(
        10, "seconds a request has, from connecting or from its first byte, to complete its headers"
    )
    http_parser: str = _setting(
        "httptools", "HTTP/1.1 parser: httptools (fast, C), or h11 (pure Python)"
    )
    max_connections: int = _setting(
        512, "concurrent connections served; beyond it new ones get 503 and are closed"
    )
    max_object_mb: int = _setting(
        256, "largest object the built-in object store accepts in MiB (EntityTooLarge beyond)"
    )
    s3_credentials: tuple[str, ...] = _setting(
        (),
        "object-store access keys, comma-separated ACCESS_KEY:SECRET=instance; a key reads and "
        "writes only its instance's buckets (default: emulator-NAME:emulator-secret-NAME per "
        "instance)",
    )
    allowed_hosts: tuple[str, ...] = _setting(
        (),
        "extra Host names the control plane and dashboard answer to, comma-separated name or "
        "name:port, * for any (loopback names, *.localhost and the bind address always)",
    )
    storage_allowed_hosts: tuple[str, ...] = _setting(
        (),
        "extra hosts Direct Access presigned URLs may name (host or host:port; this server "
        "and loopback always); * allows any",
    )

    def __post_init__(self) -> None:
        # 0 workers is allowed: jobs are accepted and stay Queued (API-only use, tests).
        if self.workers < 0:
            raise SettingsError("workers: must be >= 0")
        if not (0 < self.port < 65536):
            raise SettingsError("port: must be 1..65535")
        if not self.backends:
            raise SettingsError("backends: at least one backend is required")
        parse_instances(list(self.instances))
        if self.device not in ("CPU", "GPU"):
            raise SettingsError("device: must be 'CPU' or 'GPU'")
        if self.http_parser not in ("httptools", "h11"):
            raise SettingsError("http_parser: must be 'httptools' or 'h11'")
        if self.worker_stale_seconds < 2:
            raise SettingsError("worker_stale_seconds: must be >= 2")
        if self.lanes_per_backend < 1:
            raise SettingsError("lanes_per_backend: must be >= 1")
        if self.lane_rule not in ("all", "running"):
            raise SettingsError("lane_rule: must be 'all' or 'running'")
        if self.max_pending_jobs < 0 or self.jobs_per_minute < 0:
            raise SettingsError("max_pending_jobs, jobs_per_minute: must be >= 0 (0: no limit)")
        if self.usage_limit_action not in {a.value for a in UsageAction}:
            raise SettingsError("usage_limit_action: must be 'refuse' or 'hold'")
        try:
            _ = self.usage_limit_map
        except ValueError as exc:
            raise SettingsError(f"usage_limits: {exc}") from None
        for name in ("session_max_ttl", "session_interactive_ttl", "session_idle_timeout"):
            if getattr(self, name) < 1:
                raise SettingsError(f"{name}: must be >= 1 second")
        if self.request_read_timeout < 1:
            raise SettingsError("request_read_timeout: must be >= 1 second")
        for name in ("keep_alive_timeout", "header_read_timeout"):
            if getattr(self, name) < 1:
                raise SettingsError(f"{name}: must be >= 1 second")
        for name in ("max_request_mb", "max_connections", "max_object_mb"):
            if getattr(self, name) < 1:
                raise SettingsError(f"{name}: must be >= 1")
        for name in ("max_decoded_mb", "worker_memory_mb", "max_job_seconds"):
            if getattr(self, name) < 0:
                raise SettingsError(f"{name}: must be >= 0 (0: the default)")
        try:
            _ = self.reservation_list
        except ValueError as exc:
            raise SettingsError(f"reservations: {exc}") from None
        try:
            _ = self.methods
        except ValueError as exc:
            raise SettingsError(f"simulation_method: {exc}") from None

    @property
    def methods(self) -> MethodSetting:
        names = tuple(entry.partition("=")[0].strip() for entry in self.backends)
        return MethodSetting.parse(self.simulation_method, names)

    @property
    def instance_list(self) -> tuple[Instance, ...]:
        return parse_instances(list(self.instances))

    @property
    def reservation_list(self) -> tuple[Reservation, ...]:
        names = {i.name: i.crn for i in self.instance_list}
        return tuple(parse_reservation(spec, names) for spec in self.reservations)

    @property
    def usage_limit_map(self) -> dict[str, float]:
        """Usage limit in seconds by instance CRN; instances without one are unlimited."""
        names = {i.name: i.crn for i in self.instance_list}
        return parse_usage_limits(self.usage_limits, names)

    @property
    def lane_limit(self) -> LaneLimit:
        return LaneLimit(self.lanes_per_backend, LaneRule(self.lane_rule))

    @property
    def instance_limits(self) -> InstanceLimits:
        return InstanceLimits(
            max_pending=self.max_pending_jobs,
            per_minute=self.jobs_per_minute,
            usage=UsageLimits(self.usage_limit_map, UsageAction(self.usage_limit_action)),
        )

    @property
    def session_policy(self) -> SessionPolicy:
        return SessionPolicy(
            default_max_ttl=self.session_max_ttl,
            interactive_ttl=self.session_interactive_ttl,
            idle_close=self.session_idle_timeout,
        )

    @property
    def effective_node_name(self) -> str:
        return self.node_name or f"{socket.gethostname()}:{self.port}"

    @property
    def max_request_bytes(self) -> int:
        return self.max_request_mb * 1024 * 1024

    @property
    def max_decoded_bytes(self) -> int:
        """The decoded-size cap of one submission (twice the request limit by default)."""
        return (self.max_decoded_mb or 2 * self.max_request_mb) * 1024 * 1024

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


def setting_fields() -> list[tuple[str, str, str, Any]]:
    """(name, type name, help, default) of every setting, for the CLI and the docs."""
    out = []
    for f in fields(Settings):
        default = f.metadata.get("default", f.default if f.default is not MISSING else "")
        out.append((f.name, str(f.type), str(f.metadata.get("help", "")), default))
    return out


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
