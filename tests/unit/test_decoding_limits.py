"""Decoded-size limits (programs/limits.py): bombs and size claims are refused before decoding."""

from __future__ import annotations

import base64
import io
import json
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from qiskit import QuantumCircuit, qpy
from qiskit.qpy import formats

from emulator.domain.snapshots import BackendSnapshot, load_snapshot
from emulator.simulation import validate_params
from emulator.simulation.errors import InvalidParams
from emulator.simulation.limits import check_decoded_size

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
MIB = 1024 * 1024


def fixture_params(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())["params"]


def b64z(data: bytes) -> str:
    return base64.b64encode(zlib.compress(data, 9)).decode()


def zlib_bomb(size: int = 1 << 30) -> str:
    """A ~1 MB base64 string that inflates to `size` bytes."""
    return b64z(b"\0" * size)


def qpy_claiming(num_clbits: int) -> str:
    """A real QPY Bell circuit whose header is rewritten to claim `num_clbits` clbits."""
    circuit = QuantumCircuit(2, 2)
    circuit.h(0)
    circuit.cx(0, 1)
    circuit.measure([0, 1], [0, 1])
    buffer = io.BytesIO()
    qpy.dump(circuit, buffer)
    raw = bytearray(buffer.getvalue())
    table = formats.FILE_HEADER_V10_SIZE + formats.TYPE_KEY_SIZE
    (start,) = struct.unpack(formats.CIRCUIT_TABLE_ENTRY_PACK, raw[table : table + 8])
    size = formats.CIRCUIT_HEADER_V12_SIZE
    header = formats.CIRCUIT_HEADER_V12._make(
        struct.unpack(formats.CIRCUIT_HEADER_V12_PACK, raw[start : start + size])
    )._replace(num_clbits=num_clbits)
    raw[start : start + size] = struct.pack(formats.CIRCUIT_HEADER_V12_PACK, *header)
    return b64z(bytes(raw))


def npy_claiming(shape: tuple[int, ...]) -> str:
    """An NPY header declaring `shape` (float64) followed by 80 bytes of data."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": "<f8", "fortran_order": False, "shape": shape}
    )
    return b64z(buffer.getvalue() + b"\0" * 80)


@pytest.fixture(scope="module")
def manila() -> BackendSnapshot:
    return load_snapshot("fake_manila", "manila")


@pytest.mark.parametrize(
    "name",
    [
        "post_jobs_sampler_body.json",
        "post_jobs_sampler_options_body.json",
        "post_jobs_estimator_body.json",
        "post_jobs_executor_sampler_body.json",
    ],
)
def test_real_submissions_cost_little(name: str) -> None:
    assert 0 < check_decoded_size(fixture_params(name)) < MIB


def _refusal(params: Any, limit: int = 64 * MIB) -> InvalidParams:
    with pytest.raises(InvalidParams) as caught:
        check_decoded_size(params, limit)
    return caught.value


def test_a_zlib_bomb_array_is_refused_naming_its_field() -> None:
    error = _refusal({"pubs": [[{"__type__": "ndarray", "__value__": zlib_bomb()}]]})
    assert error.field == "params.pubs[0][0]" and "--max-decoded-mb" in error.message


def test_an_npy_header_claiming_a_huge_shape_is_refused() -> None:
    error = _refusal(
        {"pubs": [[{"__type__": "ndarray", "__value__": npy_claiming((10**6, 10**4))}]]}
    )
    assert "shape (1000000, 10000)" in error.message


def test_an_npy_header_that_lies_about_its_data_is_refused() -> None:
    error = _refusal({"x": {"__type__": "ndarray", "__value__": npy_claiming((1000,))}})
    assert "declares 8000 bytes but carries 80" in error.message


def test_a_qpy_header_claiming_ten_million_clbits_is_refused() -> None:
    error = _refusal({"pubs": [[{"__type__": "QuantumCircuit", "__value__": qpy_claiming(10**7)}]]})
    assert error.field == "params.pubs[0][0]" and "10000000 clbits" in error.message


def test_executor_tensors_and_programs_are_charged() -> None:
    params = fixture_params("post_jobs_executor_sampler_body.json")
    params["quantum_program"]["items"][0]["circuit_arguments"] = {
        "data": zlib_bomb(),
        "dtype": "f64",
        "shape": [0],
    }
    assert _refusal(params).field.endswith("circuit_arguments.data")
    params = fixture_params("post_jobs_executor_sampler_body.json")
    params["quantum_program"]["items"][0]["circuit_arguments"]["shape"] = [10**5, 10**5]
    assert _refusal(params).field.endswith("circuit_arguments.shape")
    params = fixture_params("post_jobs_executor_sampler_body.json")
    params["quantum_program"]["circuits"]["b64_data"] = qpy_claiming(10**7)
    assert _refusal(params).field.endswith("circuits.b64_data")


def test_openqasm_declarations_are_charged() -> None:
    program = 'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[2] q;\nbit[900000000] c;\n'
    assert "declared bits" in _refusal({"pubs": [[program]]}).message


def test_sparse_matrices_are_not_inputs() -> None:
    assert "sparse" in _refusal({"x": {"__type__": "spmatrix", "__value__": "AAAA"}}).message


def test_validation_applies_the_servers_budget(manila: BackendSnapshot) -> None:
    params = fixture_params("post_jobs_sampler_body.json")
    validate_params("sampler", params, manila)
    with pytest.raises(InvalidParams, match="--max-decoded-mb"):
        validate_params("sampler", params, manila, max_decoded_bytes=100)


def test_submissions_validate_concurrently(manila: BackendSnapshot) -> None:
    """No lock around validation: QPY and array decoding from many threads at once."""
    bodies = [
        json.loads((FIXTURES / name).read_text())
        for name in (
            "post_jobs_sampler_body.json",
            "post_jobs_sampler_options_body.json",
            "post_jobs_estimator_body.json",
        )
    ]

    def validate(index: int) -> str:
        body = bodies[index % len(bodies)]
        validate_params(body["program_id"], body["params"], manila)
        return str(body["program_id"])

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert sorted(set(pool.map(validate, range(240)))) == ["estimator", "sampler"]
