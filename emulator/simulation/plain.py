"""IBM's "pure JSON" primitive results, for Direct Access inputs with `support_qiskit: false`.

Shapes follow ibm-quantum-schemas' `sampler_result_v2_schema` / `estimator_result_v2_schema`:
raw-HTTP tools read them without qiskit. Sampler shots are hex strings of the measured bits, one
list per register; a pub with parameter sweeps nests those lists in the pub's shape.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from qiskit.primitives import BitArray, PrimitiveResult
from qiskit_ibm_runtime.json import RuntimeDecoder

from emulator.simulation.params import sanitize


def plain_results(program_id: str, runtime_result: str) -> str:
    """Re-express a RuntimeEncoder-encoded `PrimitiveResult` as IBM's plain JSON result."""
    result = json.loads(runtime_result, cls=RuntimeDecoder)
    if not isinstance(result, PrimitiveResult):
        raise TypeError(f"expected a PrimitiveResult, got {type(result).__name__}")
    if program_id == "sampler":
        pubs = [_sampler_pub(pub) for pub in result]
    elif program_id == "estimator":
        pubs = [_estimator_pub(pub) for pub in result]
    else:
        raise ValueError(f"no plain JSON result schema for program {program_id!r}")
    metadata = _json_safe({"version": 2, **dict(result.metadata)})
    return json.dumps({"results": pubs, "metadata": metadata})


def _sampler_pub(pub: Any) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for name, value in pub.data.items():
        if isinstance(value, BitArray):
            data[name] = {"samples": _hex_samples(value), "num_bits": value.num_bits}
    return {"data": data, "metadata": _json_safe(dict(pub.metadata))}


def _hex_samples(bits: BitArray) -> list[Any]:
    # BitArray stores each shot as big-endian packed bytes: fold them into one integer per shot.
    packed = bits.array.astype(object)
    weights = [1 << (8 * i) for i in reversed(range(packed.shape[-1]))]
    values = (packed * np.array(weights, dtype=object)).sum(axis=-1)
    return np.vectorize(hex, otypes=[object])(values).tolist()


def _estimator_pub(pub: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "evs": np.asarray(pub.data.evs).tolist(),
        "stds": np.asarray(pub.data.stds).tolist(),
    }
    if "ensemble_standard_error" in pub.data:
        data["ensemble_standard_error"] = np.asarray(pub.data.ensemble_standard_error).tolist()
    return {"data": data, "metadata": _json_safe(dict(pub.metadata))}


def _json_safe(value: Any) -> Any:
    """Metadata may hold numpy arrays and scalars; plain JSON readers need lists and numbers."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    value = sanitize(value)
    if isinstance(value, complex):
        return [value.real, value.imag]
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    return str(value)
