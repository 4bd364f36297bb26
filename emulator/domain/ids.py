"""Identifiers shaped like IBM's (`^[a-z0-9]{20}$`, starting with a letter)."""

from __future__ import annotations

import secrets
import string

_ALPHABET = string.ascii_lowercase[:22] + string.digits  # base32hex-like, as IBM's ids look


def new_id(length: int = 20) -> str:
    """A random id such as `d4f1c2e8a9b0c7d6e5f4`."""
    first = secrets.choice(string.ascii_lowercase[:22])
    return first + "".join(secrets.choice(_ALPHABET) for _ in range(length - 1))
