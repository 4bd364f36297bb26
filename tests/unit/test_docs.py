"""The documentation cannot drift from the code: settings, variables, example files."""

from __future__ import annotations

import re
from pathlib import Path

from emulator.cli import settings_reference
from emulator.config import env_name, setting_names

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
DOCS = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    *sorted((ROOT / "docker").iterdir()),
]


def test_the_configuration_reference_is_the_generated_one() -> None:
    block = re.search(r"<!-- settings:start -->\n(.*?)\n<!-- settings:end -->", README, re.S)
    assert block is not None, "README lacks the settings block"
    assert block.group(1) == settings_reference(), "run: python -m emulator settings"


def test_every_setting_is_documented_and_every_documented_variable_is_read() -> None:
    variables = {env_name(name) for name in setting_names()}
    for name in variables:
        assert f"`{name}`" in README, f"{name} is not in the configuration reference"
    for path in DOCS:
        for mentioned in re.findall(r"\bEMULATOR_[A-Z][A-Z_]*[A-Z]\b", path.read_text()):
            assert mentioned in variables, f"{path.name} mentions {mentioned}, which no code reads"
