"""Identifiers shaped like IBM's (`^[a-z0-9]{20}$`, starting with a letter), and the plan and
subscription ids the emulator gives an instance's plan."""

from __future__ import annotations

import secrets
import string
import uuid

PLAN_PREFIX = "emulator-plan-"

_ALPHABET = string.ascii_lowercase[:22] + string.digits  # base32hex-like, as IBM's ids look


def new_id(length: int = 20) -> str:
    """A random id such as `d4f1c2e8a9b0c7d6e5f4`."""
    first = secrets.choice(string.ascii_lowercase[:22])
    return first + "".join(secrets.choice(_ALPHABET) for _ in range(length - 1))


def plan_id(plan: str) -> str:
    """The catalog id of an instance's plan (`open` → `emulator-plan-open`)."""
    return PLAN_PREFIX + plan


def subscription_id(plan: str) -> str:
    """A stable subscription id per plan (a UUID, as IBM's)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, plan_id(plan)))
