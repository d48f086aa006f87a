"""The bounded reader every user file goes through, and the plan's clean event-loop shutdown."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from automation import inputs
from automation.planning.plan import build_plan


def test_ordinary_files_read_as_before(tmp_path: Path) -> None:
    config = tmp_path / "Pulumi.dev.yaml"
    config.write_bytes("\ufeffconfig:\n  aws:region: eu-west-1\n  db-recipes:note: &n café\n".encode())
    assert inputs.read_yaml(config, "config file") == {"config": {"aws:region": "eu-west-1", "db-recipes:note": "café"}}
    resources = tmp_path / "plan.json"
    resources.write_text(json.dumps({"resources": [{"a": "x, [y], {z}"}]}), encoding="utf-8")
    assert inputs.read_json(resources, "resource file")["resources"][0]["a"] == "x, [y], {z}"
    toml = tmp_path / "dbenv.toml"
    toml.write_text('recipes = ["a", "b"]\n', encoding="utf-8")
    assert inputs.read_toml(toml, "project file") == {"recipes": ["a", "b"]}


@pytest.mark.parametrize(("text", "message"), [
    ("a: &x [1]\nb: *x\n", r"line 2: YAML aliases \(\*x\) are not accepted"),
    ("a: " + "[" * 65 + "]" * 65, "nests deeper than 64 levels"),
    ("a: [" + ",".join(["1"] * (inputs.MAX_YAML_NODES + 1)) + "]", "more than 100000 values"),
    ("a: 2024-02-30\n", "value YAML cannot convert"),
    ("a: !!python/name:os.system\n", "not valid YAML"),
])
def test_hostile_yaml_is_one_clear_error(text: str, message: str) -> None:
    with pytest.raises(inputs.InputError, match=message):
        inputs.parse_yaml(text, "f")


@pytest.mark.parametrize(("text", "message"), [
    ("[" * 65 + "]" * 65, "nests deeper than 64 levels"),
    ("[" + ",".join(["0"] * (inputs.MAX_JSON_VALUES + 1)) + "]", "more than 500000 values"),
    ('{"a": "\\"[[[[' + "[" * 100 + '"}', None),  # brackets inside strings do not count
])
def test_json_bounds_count_structure_not_strings(text: str, message: str | None) -> None:
    if message is None:
        assert inputs.parse_json(text, "f")["a"].startswith('"[[[[')
        return
    with pytest.raises(inputs.InputError, match=message):
        inputs.parse_json(text, "f")


def test_size_and_kind_are_checked_before_reading(tmp_path: Path) -> None:
    big = tmp_path / "big.json"
    big.write_bytes(b" " * (inputs.MAX_BYTES + 1))
    with pytest.raises(inputs.InputError, match="the limit is 5242880 bytes"):
        inputs.read_json(big, "resource file")
    with pytest.raises(inputs.InputError, match="not a regular file"):
        inputs.read_text(tmp_path, "config file")
    with pytest.raises(inputs.InputError, match=r"is not UTF-8 text \(byte 0xe9 at offset 3\)"):
        inputs.decode("caf\xe9".encode("latin-1"), "f")


def test_a_plan_leaves_no_event_loop_open(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every loop made during a plan (its own, and the monitor threads') is closed when it returns.

    Loops left open were collected at interpreter exit and sometimes printed
    "Exception ignored ... ValueError: Invalid file descriptor: -1".
    """
    made: list[asyncio.AbstractEventLoop] = []
    real_new = asyncio.new_event_loop

    def recording_new() -> asyncio.AbstractEventLoop:
        loop = real_new()
        made.append(loop)
        return loop

    monkeypatch.setattr(asyncio, "new_event_loop", recording_new)
    build_plan({"db-recipes:recipes": "dynamodb-autoscaling,secret-rotation"}, stack="loops")
    assert len(made) >= 2  # the plan's loop and at least one monitor thread's
    assert [loop for loop in made if not loop.is_closed()] == []
