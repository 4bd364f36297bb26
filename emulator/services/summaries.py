"""Short, human-readable summaries of a job's params and result, for the dashboard.

Results are decoded with qiskit-ibm-runtime's own `RuntimeDecoder` (never re-implemented);
anything unexpected yields a summary that says so rather than an error.
"""

from __future__ import annotations

import json
from typing import Any

MAX_OUTCOMES = 16


def params_summary(program_id: str, params_text: str | None) -> dict[str, Any]:
    """Program, number of pubs, shots/precision and options, without decoding circuits."""
    if not params_text:
        return {"program": program_id}
    try:
        params = json.loads(params_text)
    except ValueError:
        return {"program": program_id, "note": "params are not JSON"}
    if not isinstance(params, dict):
        return {"program": program_id}
    pubs = params.get("pubs")
    options = params.get("options") if isinstance(params.get("options"), dict) else {}
    summary: dict[str, Any] = {
        "program": program_id,
        "version": params.get("version"),
        "pubs": len(pubs) if isinstance(pubs, list) else None,
        "options": sorted(options),
    }
    for key in ("shots", "precision"):
        if params.get(key) is not None:
            summary[key] = params[key]
    for key in ("default_shots", "default_precision"):
        if options.get(key) is not None:
            summary[key] = options[key]
    simulator = options.get("simulator")
    if isinstance(simulator, dict) and simulator.get("seed_simulator") is not None:
        summary["seed_simulator"] = simulator["seed_simulator"]
    return summary


def result_summary(program_id: str, result_text: str | None) -> dict[str, Any] | None:
    """Counts per classical register (Sampler) or expectation values (Estimator)."""
    if not result_text:
        return None
    try:
        from qiskit_ibm_runtime.utils.json import RuntimeDecoder

        result = json.loads(result_text, cls=RuntimeDecoder)
    except Exception as exc:  # noqa: BLE001 - a summary must never fail the page
        return {"note": f"result could not be decoded: {type(exc).__name__}"}
    pubs: list[dict[str, Any]] = []
    try:
        for pub in result:
            pubs.append(_pub_summary(pub))
    except TypeError:
        return {"note": f"{type(result).__name__} result"}
    return {"pubs": pubs}


def _pub_summary(pub: Any) -> dict[str, Any]:
    data = getattr(pub, "data", None)
    if data is None:
        return {}
    out: dict[str, Any] = {}
    evs = getattr(data, "evs", None)
    if evs is not None:
        out["evs"] = _plain(evs)
        stds = getattr(data, "stds", None)
        if stds is not None:
            out["stds"] = _plain(stds)
        return out
    registers: dict[str, Any] = {}
    for name in data.keys() if hasattr(data, "keys") else []:
        value = data[name]
        if hasattr(value, "get_counts"):
            counts = value.get_counts()
            top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_OUTCOMES]
            registers[name] = {"shots": sum(counts.values()), "counts": dict(top)}
    out["registers"] = registers
    return out


def _plain(value: Any) -> Any:
    tolist = getattr(value, "tolist", None)
    return tolist() if callable(tolist) else value
