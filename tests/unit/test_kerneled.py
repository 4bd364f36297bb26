"""Sampler `meas_type` `kerneled` / `avg_kerneled`: IQ points drawn from the readout error."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from qiskit import QuantumCircuit, transpile
from qiskit_ibm_runtime import RuntimeDecoder, RuntimeEncoder

from emulator.domain.snapshots import load_snapshot
from emulator.simulation import InvalidParams, ProgramFailure, run_program, validate_params
from emulator.simulation.noise import backend_target
from emulator.simulation.stabilizer import PauliNoise
from tests.circuits import ghz

BRISBANE = load_snapshot("ibm_brisbane", "brisbane")
TARGET = backend_target(BRISBANE)
SHOTS = 4000


def _zero_and_one() -> QuantumCircuit:
    """Device qubit 0 left in |0>, device qubit 1 flipped to |1>, both measured."""
    circuit = QuantumCircuit(2)
    circuit.x(1)
    circuit.measure_all()
    return transpile(circuit, target=TARGET, initial_layout=[0, 1], optimization_level=0)


def _run(meas_type: str, circuit: QuantumCircuit | None = None) -> tuple[Any, list[str]]:
    params = {
        "pubs": [[circuit or _zero_and_one(), None, SHOTS]],
        "version": 2,
        "options": {"execution": {"meas_type": meas_type}, "simulator": {"seed_simulator": 4}},
    }
    out = run_program("sampler", json.dumps(params, cls=RuntimeEncoder), BRISBANE)
    return json.loads(out.result, cls=RuntimeDecoder), out.log


def test_kerneled_points_misclassify_at_the_calibrated_readout_error() -> None:
    result, log = _run("kerneled")
    iq = result[0].data.meas
    assert iq.shape == (SHOTS, 2) and np.iscomplexobj(iq)
    errors = [sum(PauliNoise(TARGET).readout(q)) / 2 for q in (0, 1)]
    # Nearer-centre classification (|0> at +1, |1> at -1): the readout error, within 4σ of
    # the binomial spread (the prepared |1> also decays, so allow its T1 loss on top).
    flipped_zero = float(np.mean(iq[:, 0].real < 0))
    assert abs(flipped_zero - errors[0]) < 4 * np.sqrt(errors[0] / SHOTS) + 0.002
    read_one = float(np.mean(iq[:, 1].real < 0))
    assert 1 - read_one > errors[1] - 4 * np.sqrt(errors[1] / SHOTS)
    assert 1 - read_one < errors[1] + 0.03
    assert any("IQ spread from each qubit's readout error" in line for line in log)
    # Seeded: the same points again.
    assert np.array_equal(_run("kerneled")[0][0].data.meas, iq)


def test_avg_kerneled_averages_over_the_shots() -> None:
    result, _ = _run("avg_kerneled")
    iq = result[0].data.meas
    assert iq.shape == (2,) and np.iscomplexobj(iq)
    assert iq[0].real > 0.8 and iq[1].real < -0.8


def test_an_unknown_meas_type_is_refused_by_field() -> None:
    params = {
        "pubs": [[_zero_and_one()]],
        "version": 2,
        "options": {"execution": {"meas_type": "raw"}},
    }
    with pytest.raises(InvalidParams) as caught:
        validate_params("sampler", json.loads(json.dumps(params, cls=RuntimeEncoder)), BRISBANE)
    assert caught.value.field == "params.options.execution.meas_type"


def test_kerneled_on_a_circuit_only_the_stabilizer_takes_fails_naming_the_method() -> None:
    wide = transpile(ghz(40), target=TARGET, optimization_level=1, seed_transpiler=1)
    with pytest.raises(ProgramFailure, match="meas_type 'kerneled'.*stabilizer"):
        _run("kerneled", wide)
