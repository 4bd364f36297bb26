"""Wide, weakly entangling circuits: Aer's matrix product state, device noise as Pauli trajectories.

A matrix product state costs what the entanglement across each cut of a qubit chain costs
(the bond dimension χ), not 2^n: a shallow 100-qubit circuit is a fraction of a second.
Two things decide whether it stays cheap, and both are arranged here:

- **The chain order.** Aer applies a gate on qubits far apart in its chain through swaps;
  the circuits' physical qubits (heavy-hex indices) are renumbered along a reverse
  Cuthill-McKee order of their interaction graph (scipy), which keeps interacting qubits
  close: half the time of the physical order on a shallow 60-qubit circuit.
- **The noise.** Aer samples each shot as its own trajectory once a noise model has gate
  errors (1.2 s a shot for 60 qubits with the full device model: thermal relaxation's Kraus
  operators need a norm per gate). Here the device noise is the stabilizer path's
  Pauli-twirled channel (`stabilizer.PauliNoise`, each gate's calibrated error kept), and a
  fixed number of its realizations (`TRAJECTORIES`) is drawn: each is an ideal circuit with
  the drawn Paulis inserted, simulated once and sampled for its share of the shots (Aer's
  measurement sampling, readout errors included). Each shot is an exact sample of the
  twirled noise; shots that share a realization are correlated, so a job's counts vary
  more between seeds than independent trajectories would (the metadata says so).

Aer's `matrix_product_state_max_bond_dimension` caps χ at `MAX_BOND`; `auto` takes a circuit
here only when its bound (below) stays under the cap, so its results are exact MPS results.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
from qiskit.circuit import (
    CircuitInstruction,
    ControlFlowOp,
    Delay,
    QuantumCircuit,
    QuantumRegister,
)
from qiskit.circuit.library import XGate, YGate, ZGate

if TYPE_CHECKING:
    from collections.abc import Iterable

    from qiskit.primitives.containers import PrimitiveResult
    from qiskit.primitives.containers.estimator_pub import EstimatorPub
    from qiskit.primitives.containers.sampler_pub import SamplerPub

    from emulator.domain.snapshots import BackendSnapshot
    from emulator.simulation.stabilizer import PauliNoise

TRAJECTORIES = 32
"""Noise realizations drawn per bound circuit; the shots are split across them."""
MAX_BOND = 256
"""Aer's bond dimension cap; beyond it Aer truncates (forced method only)."""
# Seconds per operation and per χ³ of work at each cut a two-qubit gate spans (its SVD and
# the swaps that bring its qubits together), single-threaded Aer; measured on 2 idle cores
# 3-4e-5 s per operation (Aer's per-instruction cost dominates shallow circuits) and far
# less per χ³ than the bound suggests (the bound assumes every gate entangles fully).
SECONDS_PER_OPERATION = 1e-5
SECONDS_PER_BOND_CUBE = 1e-9
_NON_OPERATIONS = ("barrier",)
_PAULIS = (None, XGate(), YGate(), ZGate())


def mps_reason(circuit: QuantumCircuit) -> str | None:
    """None when the MPS path can take the circuit; else why not."""
    for instruction in circuit.data:
        operation = instruction.operation
        if isinstance(operation, ControlFlowOp):
            return f"it has control flow ({operation.name})"
        if getattr(operation, "condition", None) is not None:
            return f"{operation.name} is classically conditioned"
    return None


def measurements_last(circuit: QuantumCircuit) -> bool:
    """Whether every measurement is the last instruction on its qubit and nothing resets:
    then Aer simulates once and samples every shot from the final state."""
    measured: set[object] = set()
    for instruction in circuit.data:
        name = instruction.operation.name
        if name in _NON_OPERATIONS:
            continue
        if name == "reset" or isinstance(instruction.operation, ControlFlowOp):
            return False
        if name == "measure":
            measured.update(instruction.qubits)
        elif measured.intersection(instruction.qubits):
            return False
    return True


@lru_cache(maxsize=512)
def _log2_schmidt_rank(key: tuple[object, ...], matrix: bytes) -> float:
    """log2 of a two-qubit gate's operator Schmidt rank: how much one application can raise
    the bond dimension across a cut between its qubits (1 for cx, ecr, cz, rzz; 2 for swap)."""
    unitary = np.frombuffer(matrix, dtype=complex).reshape(2, 2, 2, 2)  # (o1, o0, i1, i0)
    split = unitary.transpose(1, 3, 0, 2).reshape(4, 4)  # (o0 i0) x (o1 i1)
    values = np.linalg.svd(split, compute_uv=False)
    return math.log2(max(1, int(np.sum(values > 1e-9 * values[0]))))


def _gate_rank(operation: object) -> float:
    from qiskit.quantum_info import Operator

    width = int(getattr(operation, "num_qubits", 0))
    if width != 2:
        return 2.0 * max(1, width - 1)  # wider gates: no finer bound than this
    params = tuple(
        round(float(p), 12) if isinstance(p, float | int | np.floating) else str(p)
        for p in getattr(operation, "params", ())
    )
    try:
        matrix = np.ascontiguousarray(Operator(operation).data)
    except Exception:  # noqa: BLE001 - no matrix: assume the worst for a two-qubit gate
        return 2.0
    return _log2_schmidt_rank((operation.name, *params), matrix.tobytes())


@dataclass(frozen=True)
class Plan:
    """How a circuit runs as an MPS: its qubits in chain order and what that costs."""

    order: tuple[int, ...]
    """The circuit's (active) qubit indices, in MPS chain order."""
    max_bond: int
    """A bound on the bond dimension any cut reaches (before the cap)."""
    work: float
    """Σ over two-qubit gates of χ³ at each cut they span (χ from the bound, capped)."""
    operations: int
    final_measurements: bool
    """Every measurement is the last instruction on its qubit (Aer samples all shots at once)."""

    def seconds(self, shots: int, noisy: bool, upper: bool = False) -> float:
        """Seconds of the simulation for `shots`: a low estimate (each run's operations), or
        with `upper` the bond dimension's work too, as if every gate entangled fully."""
        runs = shots if not self.final_measurements else (min(shots, TRAJECTORIES) if noisy else 1)
        work = self.work * SECONDS_PER_BOND_CUBE if upper else 0.0
        return runs * (self.operations * SECONDS_PER_OPERATION + work)


# A job's circuit is planned by the method choice, the cost estimate and the simulation (each
# walk is ~50 ms at 60 qubits): remembered per circuit object, the object held so its id stays
# unique, bounded (a worker process runs one job at a time).
_plans: dict[tuple[int, int, frozenset[int]], tuple[QuantumCircuit, Plan]] = {}
_MAX_PLANS = 64


def plan(circuit: QuantumCircuit, cap: int = MAX_BOND, extra: Iterable[int] = ()) -> Plan:
    """Order the circuit's qubits (and `extra` ones, e.g. an observable's) for an MPS and
    bound its bond dimension over time (`_plan`), once per circuit object."""
    key = (id(circuit), cap, frozenset(extra))
    found = _plans.get(key)
    if found is not None and found[0] is circuit:
        return found[1]
    layout = _plan(circuit, cap, key[2])
    if len(_plans) >= _MAX_PLANS:
        _plans.clear()
    _plans[key] = (circuit, layout)
    return layout


def _plan(circuit: QuantumCircuit, cap: int, extra: Iterable[int]) -> Plan:
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import reverse_cuthill_mckee

    index = {bit: i for i, bit in enumerate(circuit.qubits)}
    steps: list[tuple[tuple[int, ...], object]] = []
    active: set[int] = set(extra)
    for instruction in circuit.data:
        operation = instruction.operation
        if operation.name in _NON_OPERATIONS:
            continue
        qubits = tuple(index[q] for q in instruction.qubits)
        active.update(qubits)
        steps.append((qubits, operation))
    chain = sorted(active)
    position = {q: i for i, q in enumerate(chain)}
    rows, cols = [], []
    for qubits, _ in steps:
        for a in qubits[1:]:
            rows += [position[qubits[0]], position[a]]
            cols += [position[a], position[qubits[0]]]
    if rows and len(chain) > 2:
        graph = csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(chain), len(chain)))
        order = tuple(chain[i] for i in reverse_cuthill_mckee(graph, symmetric_mode=True))
    else:
        order = tuple(chain)
    place = {q: i for i, q in enumerate(order)}
    n = len(order)
    cuts = np.arange(n + 1)
    ceiling = np.minimum(np.minimum(cuts, n - cuts), math.log2(cap))  # cut k: before place k
    log_bond = np.zeros(n + 1)
    work, operations = 0.0, 0
    for qubits, operation in steps:
        operations += 1
        if len(qubits) < 2 or isinstance(operation, Delay):
            continue
        places = sorted(place[q] for q in qubits)
        span = slice(places[0] + 1, places[-1] + 1)
        log_bond[span] += _gate_rank(operation)
        work += float(np.sum(2.0 ** (3 * np.minimum(log_bond[span], ceiling[span]))))
    reached = np.minimum(log_bond, np.minimum(cuts, n - cuts))
    bound = int(2 ** reached.max()) if n else 1
    return Plan(order, bound, work, operations, measurements_last(circuit))


def compact(circuit: QuantumCircuit, layout: Plan) -> tuple[QuantumCircuit, list[tuple[int, ...]]]:
    """The circuit on len(order) qubits in chain order, its classical bits and registers kept,
    and each instruction's original qubit indices (for their noise)."""
    place = {q: i for i, q in enumerate(layout.order)}
    narrow = QuantumCircuit(QuantumRegister(len(layout.order), "q"))
    for register in circuit.cregs:
        narrow.add_register(register)
    loose = [c for c in circuit.clbits if not circuit.find_bit(c).registers]
    if loose:
        narrow.add_bits(loose)
    index = {bit: i for i, bit in enumerate(circuit.qubits)}
    physical: list[tuple[int, ...]] = []
    for instruction in circuit.data:
        if instruction.operation.name in _NON_OPERATIONS:
            continue
        qubits = tuple(index[q] for q in instruction.qubits)
        narrow._append(
            CircuitInstruction(
                instruction.operation,
                tuple(narrow.qubits[place[q]] for q in qubits),
                instruction.clbits,
            )
        )
        physical.append(qubits)
    return narrow, physical


def noisy_copies(
    narrow: QuantumCircuit,
    physical: list[tuple[int, ...]],
    noise: PauliNoise,
    count: int,
    rng: np.random.Generator,
) -> list[QuantumCircuit]:
    """`count` realizations of the twirled device noise: copies of `narrow` with the drawn
    Pauli errors inserted after each instruction (identity, most of the time)."""
    from emulator.simulation.stabilizer import _seconds

    locations: list[tuple[int, tuple[int, ...], np.ndarray]] = []
    for position, (instruction, qubits) in enumerate(zip(narrow.data, physical, strict=True)):
        operation = instruction.operation
        if operation.name == "measure":
            continue  # readout errors are Aer's, on the sampled bits
        if isinstance(operation, Delay):
            seconds = _seconds(operation, noise.target.dt)
            for offset, q in enumerate(qubits):
                found = noise.idle(q, seconds)
                if found is not None:
                    locations.append((position, (offset,), found))
            continue
        found = noise.probabilities(operation.name, qubits)
        if found is not None:
            locations.append((position, tuple(range(len(qubits))), found))
    inserted: list[list[tuple[int, tuple[int, ...], int]]] = [[] for _ in range(count)]
    for position, offsets, probabilities in locations:
        cumulative = np.cumsum(probabilities)
        drawn = np.searchsorted(cumulative, rng.random(count) * cumulative[-1], side="right")
        for trajectory in np.flatnonzero(drawn):
            inserted[trajectory].append((position, offsets, int(drawn[trajectory])))
    copies = []
    for errors in inserted:
        copy = narrow.copy()
        for position, offsets, pauli in reversed(errors):
            qubits = narrow.data[position].qubits
            # Pauli index: base 4, the first qubit's letter most significant (stim's order).
            letters = [(pauli >> (2 * (len(offsets) - 1 - k))) & 3 for k in range(len(offsets))]
            for offset, letter in zip(offsets, letters, strict=True):
                gate = _PAULIS[letter]
                if gate is not None:
                    copy.data.insert(position + 1, CircuitInstruction(gate, (qubits[offset],)))
        copies.append(copy)
    return copies


def _readout_model(noise: PauliNoise, layout: Plan) -> object:
    from qiskit_aer.noise import NoiseModel, ReadoutError

    model = NoiseModel()
    for place, qubit in enumerate(layout.order):
        up, down = noise.readout(qubit)
        if up or down:
            model.add_readout_error(ReadoutError([[1 - up, up], [down, 1 - down]]), [place])
    return model


def simulator(noise_model: object | None = None) -> object:
    """Aer's MPS simulator, one thread, bond dimension capped."""
    from qiskit_aer import AerSimulator

    return AerSimulator(
        method="matrix_product_state",
        noise_model=noise_model,
        max_parallel_threads=1,
        matrix_product_state_max_bond_dimension=MAX_BOND,
    )


def sample_mps(
    pubs: list[SamplerPub],
    snapshot: BackendSnapshot,
    seed: int,
    ideal: bool,
    trajectories: int = TRAJECTORIES,
) -> PrimitiveResult:
    """Every pub sampled on Aer's MPS (see the module docstring), shaped as Aer's SamplerV2."""
    from qiskit.primitives.containers import BitArray, DataBin, PrimitiveResult, SamplerPubResult
    from qiskit_aer.primitives import SamplerV2 as AerSamplerV2

    from emulator.simulation.noise import backend_target
    from emulator.simulation.params import bound_circuits
    from emulator.simulation.stabilizer import PauliNoise

    noise = None if ideal else PauliNoise(backend_target(snapshot))
    rng = np.random.default_rng(seed)
    results = []
    for pub in pubs:
        layout = plan(pub.circuit)
        per_binding: list[dict[str, BitArray]] = []
        for circuit in bound_circuits(pub):
            narrow, physical = compact(circuit, layout)
            if noise is None:
                copies, model = [narrow], None
            else:
                count = min(pub.shots, trajectories)
                copies = noisy_copies(narrow, physical, noise, count, rng)
                model = _readout_model(noise, layout)
            share = -(-pub.shots // len(copies))
            sampler = AerSamplerV2.from_backend(simulator(model), seed=int(rng.integers(2**62)))
            runs = sampler.run([(copy, None, share) for copy in copies]).result()
            # Shuffled, so shots sharing a realization are not neighbours in the memory.
            keep = rng.permutation(share * len(copies))[: pub.shots]
            per_binding.append(
                {
                    name: BitArray.concatenate_shots([run.data[name] for run in runs]).slice_shots(
                        keep
                    )
                    for name in (register.name for register in circuit.cregs)
                }
            )
        registers = {}
        for register in pub.circuit.cregs:
            arrays = np.stack([found[register.name].array for found in per_binding])
            registers[register.name] = BitArray(
                arrays.reshape(*pub.shape, pub.shots, arrays.shape[-1]), register.size
            )
        results.append(SamplerPubResult(DataBin(**registers, shape=pub.shape)))
    return PrimitiveResult(results)


def _narrow_observable(observable: object, layout: Plan, width: int) -> object:
    """A SparseObservable of the wide circuit as a SparsePauliOp on the narrow one."""
    from qiskit.quantum_info import SparsePauliOp

    place = {q: i for i, q in enumerate(layout.order)}
    wide = SparsePauliOp.from_sparse_observable(observable)
    terms = [
        (label, [place[int(q)] for q in qubits], coeff)
        for label, qubits, coeff in wide.to_sparse_list()
    ]
    return SparsePauliOp.from_sparse_list(terms, num_qubits=width)


def estimate_mps(
    pubs: list[EstimatorPub],
    snapshot: BackendSnapshot,
    seed: int,
    ideal: bool,
    trajectories: int = TRAJECTORIES,
) -> PrimitiveResult:
    """Every pub's expectation values on Aer's MPS: exact per noise realization (Aer's
    `save_expectation_value`), averaged over the realizations. Like Aer's estimator, each
    value then gets N(0, precision) shot noise; stds combine the precision with the spread of
    the realizations' values."""
    import qiskit_aer.library  # noqa: F401 - registers QuantumCircuit.save_expectation_value
    from qiskit.primitives.containers import DataBin, PrimitiveResult, PubResult

    from emulator.simulation.estimator import observable_support
    from emulator.simulation.noise import backend_target
    from emulator.simulation.params import bound_circuits
    from emulator.simulation.stabilizer import PauliNoise

    noise = None if ideal else PauliNoise(backend_target(snapshot))
    rng = np.random.default_rng(seed)
    results = []
    for pub in pubs:
        layout = plan(pub.circuit, extra=observable_support(pub.observables))
        width = len(layout.order)
        observables = pub.observables.sparse_observables_array()
        flat = [_narrow_observable(o, layout, width) for o in observables.ravel()]
        circuits = bound_circuits(pub)
        means = np.zeros((len(circuits), len(flat)))
        spreads = np.zeros_like(means)
        for which, circuit in enumerate(circuits):
            narrow, physical = compact(circuit, layout)
            copies = (
                [narrow]
                if noise is None
                else noisy_copies(narrow, physical, noise, trajectories, rng)
            )
            for copy in copies:
                for k, operator in enumerate(flat):
                    copy.save_expectation_value(operator, list(range(width)), label=f"o{k}")
            run = simulator().run(copies, seed_simulator=int(rng.integers(2**62))).result()
            values = np.array(
                [
                    [float(np.real(run.data(i)[f"o{k}"])) for k in range(len(flat))]
                    for i in range(len(copies))
                ]
            )
            means[which] = values.mean(axis=0)
            if len(copies) > 1:
                spreads[which] = values.std(axis=0, ddof=1) / np.sqrt(len(copies))
        which_circuit = np.broadcast_to(
            np.arange(len(circuits)).reshape(pub.parameter_values.shape), pub.shape
        )
        which_observable = np.broadcast_to(
            np.arange(len(flat)).reshape(observables.shape), pub.shape
        )
        evs = means[which_circuit, which_observable]
        stds = spreads[which_circuit, which_observable]
        precision = float(pub.precision)
        if precision > 0:
            evs = rng.normal(evs, precision)
        stds = np.sqrt(stds**2 + precision**2)
        results.append(PubResult(DataBin(evs=evs, stds=stds, shape=pub.shape)))
    return PrimitiveResult(results)
