"""A rule added on a node applies to that node's next request, even when the traffic thread's
periodic reload read the rules just before the rule was stored (a lost update that CI hit:
a probability-1 rule that did not fire)."""

from __future__ import annotations

import threading
from typing import Any

from emulator.services.traffic import FaultInjector, FaultRule


class SlowFirstRead:
    """A rule store whose first read sees the old rules and then stalls (as the traffic
    thread's read may, just before another request stores a rule)."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, dict[str, Any], int | None]] = []
        self.first_read_done = threading.Event()
        self.release = threading.Event()
        self._reads = 0

    def faults(self) -> list[tuple[int, dict[str, Any], int | None]]:
        self._reads += 1
        seen = list(self.rows)
        if self._reads == 2:  # the first read after attach: the "traffic thread"
            self.first_read_done.set()
            self.release.wait(2)  # bounded: with the fix, the adding reload waits for this
        return seen

    def add_fault(self, body: dict[str, Any], times: int | None) -> int:
        self.rows.append((len(self.rows) + 1, body, times))
        return len(self.rows)


def test_a_reload_that_read_before_an_add_cannot_hide_the_added_rule() -> None:
    store = SlowFirstRead()
    faults = FaultInjector()
    faults.attach(store)  # type: ignore[arg-type]
    stale = threading.Thread(target=faults.reload)
    stale.start()
    assert store.first_read_done.wait(10)
    faults.add(FaultRule.parse({"path": "*/backends", "status": 500}))
    store.release.set()  # the stale reload now assigns what it read, if it still can
    stale.join(10)
    assert [r.path for r in faults.rules()] == ["*/backends"]
