"""Pieces shared by the sampler, estimator and executor runners: decoding, checks, encoding."""

from __future__ import annotations

import json
import math
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from numbers import Integral, Real
from typing import TYPE_CHECKING, Any

import numpy as np
from qiskit.circuit import QuantumCircuit, Qubit
from qiskit.primitives.containers.bindings_array import BindingsArray
from qiskit_ibm_runtime.json import RuntimeDecoder, RuntimeEncoder

from emulator.simulation.errors import InvalidParams
from emulator.simulation.npy import NPY_LOCK

if TYPE_CHECKING:
    from qiskit.primitives.containers.estimator_pub import EstimatorPub
    from qiskit.primitives.containers.sampler_pub import SamplerPub
    from qiskit_aer.noise import NoiseModel

    from emulator.domain.snapshots import BackendSnapshot

DEFAULT_SHOTS = 4096
"""IBM's default when neither the pub, the params nor the options give shots."""
DEFAULT_PRECISION = 0.015625
"""IBM's default estimator precision (1/64)."""
MAX_EXECUTIONS = 10_000_000
"""IBM's job limit: circuits (after broadcasting) times shots."""
MAX_SEED = 2**63 - 1
"""Aer takes seeds as signed 64-bit integers."""

_decoder = RuntimeDecoder()


@dataclass(frozen=True)
class RunOutput:
    """What the worker stores for a completed job."""

    result: str
    """Exact body of `GET /jobs/{id}/results`."""
    log: list[str] = field(default_factory=list)
    """Human lines saying what ran: pubs, shots, simulated qubits, noise source, seed."""
    quantum_seconds: float = 0.0
    """Measured simulation wall time (reported as usage)."""


MAX_DEPTH = 64
"""Deepest JSON nesting accepted in params (real pubs nest a handful of levels)."""


def decode_markers(value: Any, path: str, depth: int = 0) -> Any:
    """Apply `RuntimeDecoder`'s object hook bottom-up, as `json.loads(cls=RuntimeDecoder)` does.

    Walking the tree ourselves lets a marker that fails to decode name its own field.
    """
    if depth > MAX_DEPTH and isinstance(value, list | dict):
        raise InvalidParams(path, f"nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, list):
        return [decode_markers(item, f"{path}[{i}]", depth + 1) for i, item in enumerate(value)]
    if isinstance(value, dict):
        decoded = {
            key: decode_markers(item, f"{path}.{key}", depth + 1) for key, item in value.items()
        }
        if "__type__" not in decoded:
            return decoded
        try:
            if decoded.get("__type__") == "ndarray":
                with NPY_LOCK:  # np.load parses the header with ast (see simulation.npy)
                    return _decoder.object_hook(decoded)
            return _decoder.object_hook(decoded)
        except Exception as exc:  # any failure here is the client's payload
            kind = decoded.get("__type__")
            raise InvalidParams(path, f"cannot decode {kind!r} value: {_describe(exc)}") from exc
    return value


def parse_params_json(params_json: str) -> Any:
    """Plain JSON parse of stored params (markers are decoded later, field by field)."""
    try:
        return json.loads(params_json)
    except (TypeError, ValueError) as exc:
        raise InvalidParams("params", f"not valid JSON: {exc}") from exc


def _describe(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def describe_error(exc: BaseException) -> str:
    """Short human text for an exception raised by a library."""
    return _describe(exc)


def field_of(prefix: str, loc: tuple[Any, ...]) -> str:
    """The wire field of a pydantic error location under `prefix` (`params.options`), without
    the union members pydantic names in it (`literal[...]`, `constrained-int`)."""
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_]\w*", str(part)):
            out += f".{part}"
    return out


def require_mapping(value: Any, path: str) -> dict[str, Any]:
    """`value` must be a JSON object."""
    if not isinstance(value, dict):
        raise InvalidParams(path, f"expected an object, got {_json_type(value)}")
    return value


def optional_mapping(value: Any, path: str) -> dict[str, Any]:
    """A JSON object or null/absent (read as empty)."""
    return {} if value is None else require_mapping(value, path)


def positive_int(value: Any, path: str) -> int:
    """A JSON integer > 0 (booleans are not integers here)."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise InvalidParams(path, f"expected a positive integer, got {_json_type(value)}")
    if value <= 0:
        raise InvalidParams(path, f"must be a positive integer, got {value}")
    return int(value)


def positive_real(value: Any, path: str) -> float:
    """A finite JSON number > 0."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise InvalidParams(path, f"expected a positive number, got {_json_type(value)}")
    number = float(value)
    if not math.isfinite(number) or number <= 0:
        raise InvalidParams(path, f"must be a positive finite number, got {value}")
    return number


def optional_seed(value: Any, path: str) -> int | None:
    """A seed accepted by Aer and numpy: an integer in [0, 2**63 - 1], or null."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise InvalidParams(path, f"expected an integer seed, got {_json_type(value)}")
    if not 0 <= value <= MAX_SEED:
        raise InvalidParams(path, f"must be between 0 and {MAX_SEED}, got {value}")
    return int(value)


def new_seed() -> int:
    """A fresh seed, logged so that a run can be repeated."""
    return secrets.randbits(31)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Integral | Real):
        return "a number"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def decode_circuit(value: Any, path: str, snapshot: BackendSnapshot) -> QuantumCircuit:
    """A decoded QPY circuit or a QASM 3 string, no wider than the backend."""
    if isinstance(value, str):
        value = _widen_physical(_load_qasm3(value, path), snapshot)
    if not isinstance(value, QuantumCircuit):
        raise InvalidParams(path, f"expected a QuantumCircuit, got {_json_type(value)}")
    check_width(value, path, snapshot)
    return value


def check_width(circuit: QuantumCircuit, path: str, snapshot: BackendSnapshot) -> None:
    """Reject circuits wider than the device."""
    if circuit.num_qubits > snapshot.num_qubits:
        raise InvalidParams(
            path,
            f"circuit has {circuit.num_qubits} qubits but backend {snapshot.name} "
            f"has {snapshot.num_qubits}",
        )


def _widen_physical(circuit: QuantumCircuit, snapshot: BackendSnapshot) -> QuantumCircuit:
    """Give a QASM 3 program on physical qubits (`$k`) the device's width.

    The importer stops at the highest `$k` used, but observables and layouts of ISA pubs span
    the whole device (qrmi sends 156-qubit observables with a 2-qubit Bell program on ibm_fez).
    Idle qubits cost nothing: simulation is reduced to the qubits the circuit touches.
    """
    missing = snapshot.num_qubits - circuit.num_qubits
    if circuit.layout is not None and missing > 0:
        circuit.add_bits([Qubit() for _ in range(missing)])
    return circuit


def _load_qasm3(text: str, path: str) -> QuantumCircuit:
    from qiskit import qasm3

    # Only programs with a version header are parsed: the ANTLR parser prints every syntax
    # error of arbitrary strings to stderr, and real OpenQASM 3 payloads carry the header.
    if not text.lstrip().startswith("OPENQASM"):
        raise InvalidParams(path, "expected a QPY circuit or an OpenQASM 3 program")
    try:
        return qasm3.loads(text)
    except Exception as exc:  # the importer raises many kinds of errors
        raise InvalidParams(path, f"cannot parse OpenQASM 3: {_describe(exc)}") from exc


def bound_circuits(pub: SamplerPub | EstimatorPub) -> list[QuantumCircuit]:
    """The pub's circuit for each of its parameter sets, in C order of their shape."""
    if not pub.circuit.num_parameters:
        return [pub.circuit] * max(1, pub.parameter_values.size)
    return list(pub.parameter_values.bind_all(pub.circuit).ravel())


def coerce_bindings(circuit: QuantumCircuit, values: Any, path: str) -> BindingsArray:
    """Parameter values for `circuit` (ordered like `circuit.parameters`), shape-checked."""
    if values is None:
        bindings = BindingsArray()
    elif isinstance(values, BindingsArray):
        bindings = values
    else:
        array = values if isinstance(values, np.ndarray) else _numeric_array(values, path)
        if array.dtype.kind not in "biuf":
            raise InvalidParams(path, f"parameter values must be real numbers, not {array.dtype}")
        if array.ndim == 0:
            array = array.reshape(1)
        try:
            bindings = BindingsArray.coerce({tuple(circuit.parameters): array})
        except Exception as exc:  # qiskit raises ValueError/TypeError/IndexError
            raise InvalidParams(path, _describe(exc)) from exc
    try:
        bindings.validate()
    except Exception as exc:
        raise InvalidParams(path, _describe(exc)) from exc
    for array in bindings.data.values():
        if np.asarray(array).dtype.kind == "f" and not np.all(np.isfinite(array)):
            raise InvalidParams(path, "parameter values must be finite")
    expected = {p.name for p in circuit.parameters}
    bound = {name for key in bindings.data for name in key}
    if expected != bound:
        raise InvalidParams(
            path,
            f"the circuit has {len(expected)} parameters but {bindings.num_parameters} values "
            "were given",
        )
    return bindings


def _numeric_array(values: Any, path: str) -> np.ndarray:
    try:
        return np.asarray(values, dtype=float)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidParams(path, f"parameter values must be a numeric array: {exc}") from exc


@dataclass(frozen=True)
class SimulatorSettings:
    """What `options.simulator` asks for, validated."""

    seed: int | None
    noise_model: NoiseModel | None
    unused: tuple[str, ...]


def simulator_settings(options: Mapping[str, Any], path: str) -> SimulatorSettings:
    """Read `options.simulator`: `seed_simulator`, `noise_model`; other keys are only logged."""
    simulator = optional_mapping(options.get("simulator"), f"{path}.simulator")
    seed = optional_seed(simulator.get("seed_simulator"), f"{path}.simulator.seed_simulator")
    noise_model = simulator.get("noise_model")
    if noise_model is not None:
        from qiskit_aer.noise import NoiseModel

        if not isinstance(noise_model, NoiseModel):
            raise InvalidParams(
                f"{path}.simulator.noise_model",
                f"expected a NoiseModel, got {_json_type(noise_model)}",
            )
    unused = tuple(
        sorted(
            k
            for k, v in simulator.items()
            if k not in {"seed_simulator", "noise_model"} and v is not None
        )
    )
    return SimulatorSettings(seed=seed, noise_model=noise_model, unused=unused)


def ignored_keys(options: Mapping[str, Any], used: set[str]) -> list[str]:
    """Option keys that were set but have no effect on the emulator (logged, never rejected)."""
    return sorted(k for k, v in options.items() if k not in used and _is_set(v))


def _is_set(value: Any) -> bool:
    # Identity/len checks only: decoded values may be numpy arrays, which have no truth value.
    if value is None:
        return False
    return not (isinstance(value, dict | list | tuple | str) and len(value) == 0)


def check_executions(total: int, path: str) -> None:
    """Apply IBM's limit on circuits x shots per job."""
    if total > MAX_EXECUTIONS:
        raise InvalidParams(
            path,
            f"the job asks for {total} executions (circuits x shots); the limit is "
            f"{MAX_EXECUTIONS}",
        )


def sanitize(value: Any) -> Any:
    """Turn numpy scalars (which `RuntimeEncoder` rejects) and tuples into JSON-friendly types."""
    if isinstance(value, dict):
        return {str(k) if not isinstance(k, str) else k: sanitize(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [sanitize(v) for v in value]
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.complexfloating):
        return complex(value)
    return value


def encode(value: Any) -> str:
    """JSON with the client's own type markers."""
    return json.dumps(value, cls=RuntimeEncoder)


class Stopwatch:
    """Wall time of the simulation proper, with UTC timestamps for execution spans."""

    def __init__(self) -> None:
        self.start: datetime = datetime.now(UTC)
        self.stop: datetime = self.start
        self._t0 = time.perf_counter()
        self.seconds = 0.0

    def __enter__(self) -> Stopwatch:
        self.start = datetime.now(UTC)
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._t0
        self.stop = datetime.now(UTC)


def count(n: int, noun: str) -> str:
    """`1 qubit`, `2 qubits`."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def format_qubits(qubits: set[int] | frozenset[int]) -> str:
    """Compact qubit list for logs."""
    ordered = sorted(qubits)
    if len(ordered) > 12:
        return f"{len(ordered)} qubits ({ordered[0]}..{ordered[-1]})"
    return f"{len(ordered)} qubit{'s' if len(ordered) != 1 else ''} {ordered}"


def check_version(params: Mapping[str, Any]) -> None:
    """Only the V2 primitives exist on IBM's side any more."""
    version = params.get("version")
    if version is not None and (isinstance(version, bool) or version != 2):
        raise InvalidParams("params.version", f"only version 2 is supported, got {version!r}")


def decoded_options(params: Any) -> tuple[Mapping[str, Any], Mapping[str, Any], SimulatorSettings]:
    """The checks every primitive starts with: params object, version, options, simulator."""
    params = require_mapping(params, "params")
    check_version(params)
    options = optional_mapping(
        decode_markers(params.get("options"), "params.options"), "params.options"
    )
    return params, options, simulator_settings(options, "params.options")
