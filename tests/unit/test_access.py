"""Bearer tokens against a clock the test moves: checked once and remembered, yet refused the
moment they expire, whether remembered or not (no wall-clock wait, no race with a slow machine)."""

from __future__ import annotations

from pathlib import Path

import pytest

from emulator.config import Settings
from emulator.domain.errors import NotAuthenticated
from emulator.services.access import AccessPolicy


class Clock:
    def __init__(self) -> None:
        self.now = 1_900_000_000.0

    def __call__(self) -> float:
        return self.now


def _policy(tmp_path: Path, clock: Clock) -> AccessPolicy:
    return AccessPolicy(Settings(data_dir=tmp_path, token_ttl=60), b"s" * 32, clock=clock)


def test_a_remembered_token_is_refused_once_it_expires(tmp_path: Path) -> None:
    clock = Clock()
    policy = _policy(tmp_path, clock)
    token = policy.issue_token("key")["access_token"]
    first = policy.identify(f"Bearer {token}")
    clock.now += 59
    assert policy.identify(f"Bearer {token}") == first  # remembered, still valid
    clock.now += 1
    with pytest.raises(NotAuthenticated, match="expired"):
        policy.identify(f"Bearer {token}")
    with pytest.raises(NotAuthenticated, match="expired"):
        policy.identify(f"Bearer {token}")  # and stays refused once forgotten


def test_a_token_first_seen_after_its_expiry_is_refused(tmp_path: Path) -> None:
    clock = Clock()
    issuer = _policy(tmp_path, clock)
    token = issuer.issue_token("key")["access_token"]
    clock.now += 60
    with pytest.raises(NotAuthenticated, match="expired"):
        _policy(tmp_path, clock).identify(f"Bearer {token}")
