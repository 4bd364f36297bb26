"""Test helpers: the shipped ones (`emulator.testing`), re-exported for the emulator's tests."""

from __future__ import annotations

from pathlib import Path

from emulator.testing import (
    EmulatorControl,
    EmulatorServer,
    applied_env,
    emulator_env,
    free_port,
    service_for,
    wait_until,
)

ROOT = Path(__file__).resolve().parent.parent

__all__ = [
    "ROOT",
    "EmulatorControl",
    "EmulatorServer",
    "applied_env",
    "emulator_env",
    "free_port",
    "service_for",
    "wait_until",
]
