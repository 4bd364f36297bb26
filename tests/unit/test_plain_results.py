"""IBM's plain JSON results (Direct Access, `support_qiskit: false`) from the real captures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from qiskit.primitives import BitArray, DataBin, PrimitiveResult, SamplerPubResult
from qiskit_ibm_runtime.json import RuntimeDecoder, RuntimeEncoder

from emulator.simulation.plain import plain_results

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


def test_sampler_samples_are_the_shots_in_hex() -> None:
    text = (FIXTURES / "sampler_result.json").read_text()
    decoded = json.loads(text, cls=RuntimeDecoder)
    plain = json.loads(plain_results("sampler", text))
    assert plain["metadata"]["version"] == 2
    assert "__type__" not in json.dumps(plain)
    assert len(plain["results"]) == len(decoded)
    for pub, want in zip(plain["results"], decoded, strict=True):
        bits = want.data.meas
        assert pub["data"]["meas"]["num_bits"] == bits.num_bits
        samples = np.array(pub["data"]["meas"]["samples"], dtype=object)
        assert samples.shape == (*bits.shape, bits.num_shots)
        for index in np.ndindex(bits.shape):
            got = [int(s, 16) for s in samples[index]]
            assert got == [int(b, 2) for b in bits[index].get_bitstrings()]
        assert pub["metadata"]["shots"] == bits.num_shots


def test_sampler_registers_wider_than_a_byte() -> None:
    rng = np.random.default_rng(7)
    bits = BitArray.from_samples([int(x) for x in rng.integers(0, 2**11, 16)], num_bits=11)
    result = PrimitiveResult([SamplerPubResult(DataBin(c=bits), metadata={"shots": 16})])
    plain = json.loads(plain_results("sampler", json.dumps(result, cls=RuntimeEncoder)))
    samples = plain["results"][0]["data"]["c"]["samples"]
    assert [int(s, 16) for s in samples] == [int(b, 2) for b in bits.get_bitstrings()]
    assert plain["results"][0]["data"]["c"]["num_bits"] == 11


def test_estimator_evs_and_stds() -> None:
    text = (FIXTURES / "estimator_result.json").read_text()
    decoded = json.loads(text, cls=RuntimeDecoder)
    plain = json.loads(plain_results("estimator", text))
    for pub, want in zip(plain["results"], decoded, strict=True):
        assert pub["data"]["evs"] == np.asarray(want.data.evs).tolist()
        assert pub["data"]["stds"] == np.asarray(want.data.stds).tolist()
    assert plain["metadata"] == {"version": 2}


def test_unknown_program_is_refused() -> None:
    text = (FIXTURES / "estimator_result.json").read_text()
    with pytest.raises(ValueError, match="executor"):
        plain_results("executor", text)
