"""Decoded-size limits: refuse a submission whose payloads would decode to more than a budget,
before anything of that size is allocated.

A job's params carry compressed payloads: RuntimeDecoder's `ndarray` and `QuantumCircuit`
markers (base64 of zlib of NPY or QPY), the executor's tensors and QPY programs (the same, in
the client's schema models), and OpenQASM 3 text. A few hundred bytes of zlib can expand to
gigabytes, an NPY header can declare any shape, and a QPY circuit header can claim 10**7
clbits that the reader then creates one by one. So, on the plain JSON tree and before any
decoder runs, this module

- decompresses every blob with `zlib.decompressobj(...).decompress(data, max_length)`, never
  producing more than what is left of the budget;
- reads the declared sizes with the formats' own readers (NumPy's `read_magic` /
  `read_array_header_*`, Qiskit's QPY header structs and program offset table) and charges
  them to the budget;
- charges OpenQASM programs their length and their declared registers.

The budget is per submission (`--max-decoded-mb`); an overrun is InvalidParams naming the
field, so the client gets a 400 and nothing is decoded or stored.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import re
import struct
import zlib
from collections.abc import Iterator
from typing import Any

import numpy as np

from emulator.simulation.errors import InvalidParams
from emulator.simulation.npy import NPY_LOCK

DEFAULT_BUDGET = 200 * 1024 * 1024
"""Used where no setting reaches (tests, the worker's own re-check); the server passes its own."""
BIT_COST = 128
"""Bytes charged per qubit or clbit a QPY circuit declares (Python and Rust objects for it)."""
INFLATE_CHUNK = 1 << 20
"""Bytes inflated at a time while a payload's size is counted."""
INSTRUCTION_COST = 256
"""Bytes charged per instruction (and per variable) a QPY circuit declares."""
_QASM_DECLARATION = re.compile(
    r"\b(?:qubit|bit|qreg|creg)\s*\[\s*(\d{1,12})\s*\]|\b(?:qreg|creg)\s+\w+\s*\[\s*(\d{1,12})\s*\]"
)


class Budget:
    """What is left of a submission's decoded-size allowance."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    @property
    def left(self) -> int:
        return max(0, self.limit - self.used)

    def charge(self, nbytes: int, path: str, what: str) -> None:
        self.used += max(0, nbytes)
        if self.used > self.limit:
            raise InvalidParams(
                path,
                f"{what} would decode to more than the server's limit of "
                f"{_mib(self.limit)} per job (--max-decoded-mb)",
            )


def check_decoded_size(params: Any, limit: int = DEFAULT_BUDGET, root: str = "params") -> int:
    """Charge every payload in `params` (plain JSON) to a budget of `limit` bytes.

    Returns the bytes charged; raises InvalidParams at the first payload that overruns.
    """
    budget = Budget(limit)
    for path, node in _walk(params, root):
        if isinstance(node, str):
            if node.lstrip().startswith("OPENQASM"):
                _charge_qasm(node, path, budget)
            continue
        kind = node.get("__type__")
        value = node.get("__value__")
        if kind == "ndarray" and isinstance(value, str):
            _charge_npy(_inflate(value, path, budget, "the array"), path, budget)
        elif kind in ("QuantumCircuit", "Instruction") and isinstance(value, str):
            _charge_qpy(_inflate(value, path, budget, "the circuit"), path, budget)
        elif kind == "spmatrix":
            # Sparse matrices (zip archives) are results, never inputs of a primitive.
            raise InvalidParams(path, "sparse matrices are not accepted in job params")
        elif isinstance(node.get("b64_data"), str):
            _charge_qpy(
                _inflate(node["b64_data"], f"{path}.b64_data", budget, "the circuits"),
                f"{path}.b64_data",
                budget,
            )
        elif isinstance(node.get("data"), str) and "dtype" in node and "shape" in node:
            _charge_tensor(node, path, budget)
    return budget.used


def _walk(value: Any, root: str) -> Iterator[tuple[str, Any]]:
    """(path, node) of every object and string, depth first, without recursion."""
    stack: list[tuple[str, Any]] = [(root, value)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, dict):
            yield path, node
            stack.extend((f"{path}.{k}", v) for k, v in node.items())
        elif isinstance(node, list):
            stack.extend((f"{path}[{i}]", v) for i, v in enumerate(node))
        elif isinstance(node, str):
            yield path, node


def _inflate(text: str, path: str, budget: Budget, what: str) -> bytes:
    """base64 then zlib. The inflated size is first counted in small chunks that are thrown
    away, so a bomb costs CPU up to the budget but no memory; only a payload that fits is
    inflated for real."""
    try:
        compressed = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidParams(path, f"{what} is not valid base64") from None
    inflater = zlib.decompressobj()
    size, pending = 0, compressed
    try:
        while pending:
            size += len(inflater.decompress(pending, INFLATE_CHUNK))
            if size > budget.left:
                budget.charge(size, path, what)
            pending = inflater.unconsumed_tail
        size += len(inflater.flush())
        budget.charge(size, path, what)
        return zlib.decompress(compressed)
    except zlib.error as exc:
        raise InvalidParams(path, f"{what} is not valid zlib data ({exc})") from None


def _charge_npy(data: bytes, path: str, budget: Budget) -> None:
    """NPY: the header's shape and dtype must describe exactly the data that follows."""
    stream = io.BytesIO(data)
    try:
        major, _ = np.lib.format.read_magic(stream)
        reader = (
            np.lib.format.read_array_header_1_0
            if major == 1
            else np.lib.format.read_array_header_2_0
        )
        with NPY_LOCK:  # the header is parsed with ast (see simulation.npy)
            shape, _, dtype = reader(stream)
    except (ValueError, TypeError, SyntaxError) as exc:
        raise InvalidParams(path, f"the array is not a valid NPY payload ({exc})") from None
    if dtype.hasobject:
        raise InvalidParams(path, "object arrays are not accepted")
    declared = math.prod(int(n) for n in shape) * dtype.itemsize
    budget.charge(declared, path, f"the array of shape {tuple(shape)}")
    if declared != len(data) - stream.tell():
        raise InvalidParams(
            path,
            f"the array's header declares {declared} bytes but carries {len(data) - stream.tell()}",
        )


def _charge_tensor(node: dict[str, Any], path: str, budget: Budget) -> None:
    """An executor tensor: declared shape times item size, and its inflated data."""
    shape, dtype = node.get("shape"), node.get("dtype")
    if not isinstance(shape, list) or not all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape
    ):
        raise InvalidParams(f"{path}.shape", "must be a list of non-negative integers")
    digits = re.sub(r"\D", "", str(dtype))
    itemsize = max(1, int(digits) // 8) if digits else 1
    budget.charge(math.prod(shape) * itemsize, f"{path}.shape", f"the tensor of shape {shape}")
    _inflate(node["data"], f"{path}.data", budget, "the tensor")


def _charge_qpy(data: bytes, path: str, budget: Budget) -> None:
    """QPY: charge every circuit's declared qubits, clbits, instructions and variables.

    Uses Qiskit's own header structs; from QPY 16 on, a table of offsets locates every
    circuit's header, so none is read by building the circuits before it.
    """
    from qiskit.qpy import formats

    def unpack(fmt: str, size: int, offset: int) -> tuple[Any, ...]:
        if offset < 0 or offset + size > len(data):
            raise InvalidParams(path, "the QPY payload is truncated")
        return struct.unpack(fmt, data[offset : offset + size])

    if data[:6] != b"QISKIT" or len(data) < formats.FILE_HEADER_SIZE:
        raise InvalidParams(path, "not a QPY payload")
    version = data[6]
    if version < 10:
        header = formats.FILE_HEADER._make(
            unpack(formats.FILE_HEADER_PACK, formats.FILE_HEADER_SIZE, 0)
        )
        offset = formats.FILE_HEADER_SIZE
    else:
        header = formats.FILE_HEADER_V10._make(
            unpack(formats.FILE_HEADER_V10_PACK, formats.FILE_HEADER_V10_SIZE, 0)
        )
        offset = formats.FILE_HEADER_V10_SIZE
    programs = int(header.num_programs)
    if version >= 5:
        offset += formats.TYPE_KEY_SIZE
    if version >= 16:
        entry = formats.CIRCUIT_TABLE_ENTRY_SIZE
        if programs * entry > len(data):
            raise InvalidParams(path, f"the QPY payload claims {programs} circuits")
        starts = [
            int(unpack(formats.CIRCUIT_TABLE_ENTRY_PACK, entry, offset + i * entry)[0])
            for i in range(programs)
        ]
    elif programs == 1:
        starts = [offset]
    else:
        # Before QPY 16 a circuit's header can only be found by reading every circuit before
        # it; clients send one circuit per payload in these versions.
        raise InvalidParams(path, f"a QPY {version} payload must hold one circuit")
    if version >= 12:
        fmt, size = formats.CIRCUIT_HEADER_V12_PACK, formats.CIRCUIT_HEADER_V12_SIZE
        fields = formats.CIRCUIT_HEADER_V12._fields
    else:
        fmt, size = formats.CIRCUIT_HEADER_V2_PACK, formats.CIRCUIT_HEADER_V2_SIZE
        fields = formats.CIRCUIT_HEADER_V2._fields
    for index, start in enumerate(starts):
        claims = dict(zip(fields, unpack(fmt, size, start), strict=True))
        bits = int(claims["num_qubits"]) + int(claims["num_clbits"])
        operations = int(claims["num_instructions"]) + int(claims.get("num_vars", 0))
        budget.charge(
            bits * BIT_COST + operations * INSTRUCTION_COST,
            path,
            f"circuit {index} ({claims['num_qubits']} qubits, {claims['num_clbits']} clbits, "
            f"{claims['num_instructions']} instructions)",
        )


def _charge_qasm(text: str, path: str, budget: Budget) -> None:
    budget.charge(len(text), path, "the OpenQASM program")
    declared = sum(int(a or b) for a, b in _QASM_DECLARATION.findall(text))
    budget.charge(declared * BIT_COST, path, f"the OpenQASM program's {declared} declared bits")


def _mib(nbytes: int) -> str:
    return f"{nbytes / (1024 * 1024):g} MiB"
