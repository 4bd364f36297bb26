"""Secrets shared through the store: every node of one store signs and checks tokens with one
key, created once even when nodes start at once; an earlier release's key file is adopted."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from emulator.store.db import create_store_engine
from emulator.store.secrets import TOKEN_SIGNING, shared_secret


def test_nodes_starting_at_once_share_one_key(database_url: str) -> None:
    def start(_: int) -> bytes:
        engine = create_store_engine(database_url)
        try:
            return shared_secret(engine, TOKEN_SIGNING)
        finally:
            engine.dispose()

    with ThreadPoolExecutor(max_workers=4) as pool:
        keys = set(pool.map(start, range(4)))
    assert len(keys) == 1 and len(keys.pop()) == 32


def test_the_key_file_of_an_earlier_release_is_adopted_once(
    database_url: str, tmp_path: Path
) -> None:
    old = tmp_path / "token-secret"
    old.write_bytes(b"k" * 32)
    engine = create_store_engine(database_url)
    try:
        assert shared_secret(engine, TOKEN_SIGNING, adopt=old) == b"k" * 32
        old.write_bytes(b"x" * 32)  # the store's key is the key from now on
        assert shared_secret(engine, TOKEN_SIGNING, adopt=old) == b"k" * 32
        assert shared_secret(engine, "another") not in (b"k" * 32, b"x" * 32)
    finally:
        engine.dispose()
