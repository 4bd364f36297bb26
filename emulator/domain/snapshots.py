"""Backend snapshots: the real configuration/properties JSON shipped inside qiskit-ibm-runtime.

The client builds its Target from exactly these documents, so serving them (and simulating
with noise derived from them) keeps the emulator and the client in agreement about every
qubit, gate and error rate.
"""

from __future__ import annotations

import copy
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import qiskit_ibm_runtime.fake_provider as _fake_provider
from dateutil.parser import isoparse

from emulator.domain.jobs import naive_utc

# Namespace of the calibration ids (BackendSnapshot.calibration_id).
_CALIBRATIONS = uuid.uuid5(uuid.NAMESPACE_URL, "urn:ibm-quantum-emulator:calibration")


class UnknownSnapshot(ValueError):
    """A configured backend names a snapshot the client package does not ship."""


def snapshot_root() -> Path:
    """Directory holding `<source>/conf_<source>.json` and `props_<source>.json`."""
    return Path(_fake_provider.__file__).parent / "backends"


def available_sources() -> list[str]:
    """Every snapshot the installed client package ships."""
    root = snapshot_root()
    return sorted(p.name for p in root.iterdir() if (p / f"conf_{p.name}.json").is_file())


def parse_backend_spec(spec: str) -> tuple[str, str]:
    """`ibm_brisbane` → (`ibm_brisbane`, `brisbane`); `my_qpu=kyiv` → (`my_qpu`, `kyiv`).

    Without `=`, the snapshot is the part after the first underscore, mirroring IBM's
    `ibm_<city>` names and the client's own `fake_<city>` names.
    """
    spec = spec.strip()
    if "=" in spec:
        name, source = (part.strip() for part in spec.split("=", 1))
    else:
        name = spec
        source = spec.split("_", 1)[1] if "_" in spec else spec
    if not name or not source:
        raise UnknownSnapshot(f"invalid backend spec {spec!r}")
    return name, source


@dataclass(frozen=True)
class BackendSnapshot:
    """One served backend: its name and the documents the client reads."""

    name: str
    source: str
    configuration: dict[str, Any] = field(repr=False)
    properties: dict[str, Any] = field(repr=False)

    @property
    def num_qubits(self) -> int:
        return int(self.configuration["n_qubits"])

    @property
    def processor_type(self) -> dict[str, Any]:
        return dict(self.configuration.get("processor_type") or {})

    @property
    def last_update(self) -> datetime | None:
        """The calibration time of the properties, naive UTC like the store's timestamps."""
        raw = self.properties.get("last_update_date")
        if not raw:
            return None
        return naive_utc(isoparse(str(raw)))

    @property
    def backend_version(self) -> str:
        return str(self.configuration.get("backend_version", "1.0.0"))

    @property
    def calibration_id(self) -> str:
        """The id of the one calibration the emulator serves for this backend: stable for a
        backend name, snapshot and calibration time (a UUID derived from them), so clients
        may pin it (`service.backend(name, calibration_id=...)`) across restarts."""
        when = str(self.properties.get("last_update_date") or "")
        return str(uuid.uuid5(_CALIBRATIONS, f"{self.name}/{self.source}/{when}"))


@cache
def _read_documents(source: str) -> tuple[dict[str, Any], dict[str, Any]]:
    directory = snapshot_root() / source
    conf_path = directory / f"conf_{source}.json"
    props_path = directory / f"props_{source}.json"
    if not conf_path.is_file() or not props_path.is_file():
        raise UnknownSnapshot(
            f"no backend snapshot {source!r} in qiskit-ibm-runtime; "
            f"available: {', '.join(available_sources())}"
        )
    return json.loads(conf_path.read_text()), json.loads(props_path.read_text())


def load_snapshot(name: str, source: str) -> BackendSnapshot:
    """Load a snapshot under a served name, with the keys the client needs guaranteed."""
    conf, props = _read_documents(source)
    conf = copy.deepcopy(conf)
    props = copy.deepcopy(props)
    conf["backend_name"] = name
    props["backend_name"] = name
    conf.setdefault("online_date", "2024-01-01T00:00:00Z")
    # A QPU-like backend: `simulator: true` would disable ISA validation and sessions client-side.
    conf["simulator"] = False
    # `service.backends(dynamic_circuits=True)` filters on this feature; IBM lists it on the
    # processors that run control flow, which a snapshot states in its instructions.
    features = list(conf.get("supported_features") or [])
    if "if_else" in (conf.get("supported_instructions") or []) and (
        "dynamic_circuits" not in features
    ):
        features.append("dynamic_circuits")
    conf["supported_features"] = features
    return BackendSnapshot(name=name, source=source, configuration=conf, properties=props)
