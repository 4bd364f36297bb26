"""The served backends: snapshots by name, their `mock_*` twins, and their live status."""

from __future__ import annotations

from dataclasses import dataclass

from emulator.domain.errors import BackendNotFound
from emulator.domain.snapshots import BackendSnapshot, load_snapshot, parse_backend_spec


@dataclass(frozen=True)
class ServedBackend:
    """A backend as clients see it. A mock shares its twin's snapshot (used by `dry_run`)."""

    name: str
    snapshot: BackendSnapshot
    mock: bool = False

    @property
    def num_qubits(self) -> int:
        return self.snapshot.num_qubits


def mock_name(name: str) -> str:
    """The client's dry-run rule: the prefix before the first `_` becomes `mock`."""
    return "mock_" + name.split("_", 1)[1] if "_" in name else "mock_" + name


class BackendRegistry:
    """Backends configured at start-up, looked up by served name."""

    def __init__(self, specs: tuple[str, ...] | list[str]) -> None:
        self._backends: dict[str, ServedBackend] = {}
        for spec in specs:
            name, source = parse_backend_spec(spec)
            snapshot = load_snapshot(name, source)
            self._backends[name] = ServedBackend(name=name, snapshot=snapshot)
        for served in list(self._backends.values()):
            twin = mock_name(served.name)
            if twin not in self._backends:
                self._backends[twin] = ServedBackend(
                    name=twin, snapshot=load_snapshot(twin, served.snapshot.source), mock=True
                )

    def get(self, name: str) -> ServedBackend:
        try:
            return self._backends[name]
        except KeyError:
            raise BackendNotFound(f"Backend not found: {name}") from None

    def all(self) -> list[ServedBackend]:
        return list(self._backends.values())

    def real_names(self) -> list[str]:
        """The served backends' names, their `mock_*` twins left out."""
        return [name for name, b in self._backends.items() if not b.mock]

    def mock_names(self) -> tuple[str, ...]:
        """The `mock_*` (dry-run) twins, which listings show only with `include_mocks`."""
        return tuple(name for name, b in self._backends.items() if b.mock)

    def specs(self) -> list[tuple[str, str]]:
        """(served name, snapshot source) pairs, for worker processes."""
        return [(b.name, b.snapshot.source) for b in self._backends.values()]
