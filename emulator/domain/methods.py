"""Which simulation method a job may use: the `--simulation-method` setting, per backend."""

from __future__ import annotations

from dataclasses import dataclass, field

AUTO = "auto"
STATEVECTOR = "statevector"
STABILIZER = "stabilizer"
MATRIX_PRODUCT_STATE = "matrix_product_state"
DENSITY_MATRIX = "density_matrix"
SIMULATION_METHODS = (AUTO, STATEVECTOR, MATRIX_PRODUCT_STATE, STABILIZER, DENSITY_MATRIX)
"""`auto` picks per job (the job log says which and why); the others force one."""


@dataclass(frozen=True)
class MethodSetting:
    """The method for every backend, with per-backend exceptions."""

    default: str = AUTO
    per_backend: tuple[tuple[str, str], ...] = field(default=())

    def for_backend(self, name: str) -> str:
        return dict(self.per_backend).get(name, self.default)

    @classmethod
    def parse(
        cls, entries: tuple[str, ...] | list[str], backends: tuple[str, ...]
    ) -> MethodSetting:
        """`METHOD` for every backend and/or `BACKEND=METHOD` entries. Raises ValueError."""
        default, per_backend = AUTO, {}
        for entry in entries:
            name, sep, method = (part.strip() for part in entry.partition("="))
            if not sep:
                name, method = "", name
            if method not in SIMULATION_METHODS:
                raise ValueError(f"{method!r} is not one of {', '.join(SIMULATION_METHODS)}")
            if not name:
                default = method
            elif name not in backends:
                raise ValueError(f"{name!r} is not a served backend ({', '.join(backends)})")
            else:
                per_backend[name] = method
        return cls(default, tuple(sorted(per_backend.items())))
