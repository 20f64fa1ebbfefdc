"""The README's "complete file with the defaults" is a valid config that changes nothing."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import yaml

from sipbridge import config

README = Path(__file__).resolve().parents[3] / "README.md"


def _defaults_block() -> str:
    text = README.read_text()
    start = text.index("A complete file with the defaults:")
    match = re.compile(r"```yaml\n(.*?)```", re.S).search(text, start)
    assert match is not None, "no yaml block after 'A complete file with the defaults:'"
    return match.group(1)


def test_the_documented_defaults_file_loads_and_equals_the_built_in_defaults():
    """Copying the README's defaults into a file gives exactly the defaults the code uses."""
    documented = config.build(yaml.safe_load(_defaults_block()), environ={})
    assert documented == config.build({}, environ={})


def test_every_key_of_every_section_is_documented():
    """Each key a section accepts appears in the README's defaults file (documented with its default)."""
    raw = yaml.safe_load(_defaults_block())
    for name, cls in config._SECTIONS.items():
        fields = {f.name for f in dataclasses.fields(cls)}
        assert set(raw[name]) == fields, (name, fields ^ set(raw[name]))


def test_every_turn_detection_key_is_documented():
    """turn_detection's keys (and profile) all appear in the README's defaults file."""
    from sipbridge.turn.settings import TurnSettings

    raw = yaml.safe_load(_defaults_block())["turn_detection"]
    assert set(raw) == {f.name for f in dataclasses.fields(TurnSettings)} | {"profile"}
