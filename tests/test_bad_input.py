"""The bad-input corpus (tests/bad_input.py) through every command: exit 2, one clear line, nothing created.

Runs in a fresh project directory with no Pulumi CLI reachable: a command that got past its
input checks would reach for the CLI and exit 1, so exit 2 proves the input was refused first.
How long each answer takes is printed by benchmarks/hostile_input.py.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from automation import cli, workspace
from tests import bad_input

runner = CliRunner()
STACK_COMMANDS = ("plan", "up", "preview", "policy")
# Files whose fault is their meaning for a branch stack, not their form: the shared stack reads
# only region and network from a config file, and dbenv.toml's recipes matter only to stack builders.
ONLY_FOR_BRANCH_STACKS = {"yaml-unknown-recipe"}
ONLY_FOR_STACK_BUILDERS = {"toml-bad-recipes"}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return bad_input.write_files(tmp_path_factory.mktemp("corpus"))


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    root = tmp_path / "project"
    root.mkdir()
    (root / "dbenv.toml").write_text("", encoding="utf-8")
    monkeypatch.chdir(root)
    for key in list(os.environ):
        if key.startswith(("DBENV_", "PULUMI_")):
            monkeypatch.delenv(key)
    monkeypatch.setattr(workspace, "find_pulumi", lambda *a, **k: None)
    yield root


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def assert_refused(args: list[str], root: Path, env: dict[str, str] | None = None) -> None:
    before = _tree(root)
    result = runner.invoke(cli.app, args, env=env)
    shown = f"{args} -> exit {result.exit_code}\n{result.output}"
    assert result.exit_code == 2, shown
    assert isinstance(result.exception, SystemExit), shown
    assert "Traceback" not in result.output, shown
    own_lines = [line for line in result.stderr.splitlines() if line.startswith("dbenv:")]
    assert len(own_lines) == 1 or "Usage:" in result.stderr, shown  # one line, or typer's usage error
    assert "internal error" not in result.stderr, shown
    assert _tree(root) == before, f"{shown}\ncreated: {sorted(_tree(root) - before)}"


def _file_cases() -> list[tuple[str, list[str]]]:
    cases = []
    for kind, slots in bad_input.FILE_SLOTS.items():
        names = [n for n, (k, _) in bad_input.FILES.items() if k == kind or kind == "pem"]
        for name in [*names, "fifo", "directory", "missing"]:
            for slot in slots:
                if name in ONLY_FOR_BRANCH_STACKS and slot[0] == "shared":
                    continue
                cases.append((name, slot))
    return cases


@pytest.mark.parametrize(("name", "slot"), _file_cases(), ids=lambda v: v if isinstance(v, str) else " ".join(v[:2]))
def test_bad_files_are_refused_by_every_command_that_reads_them(name: str, slot: list[str],
                                                                 corpus: dict[str, Path], project: Path) -> None:
    assert_refused([str(corpus[name]) if part == "{}" else part for part in slot], project)


def _project_file_cases() -> list[tuple[str, list[str]]]:
    names = [n for n, (k, _) in bad_input.FILES.items() if k == "toml"]
    return [(name, command) for name in names for command in bad_input.EVERY_COMMAND
            if name not in ONLY_FOR_STACK_BUILDERS or command[0] in STACK_COMMANDS]


@pytest.mark.parametrize(("name", "command"), _project_file_cases(),
                         ids=lambda v: v if isinstance(v, str) else " ".join(v[:2]))
def test_a_bad_project_file_is_refused_by_every_command(name: str, command: list[str], corpus: dict[str, Path],
                                                        project: Path) -> None:
    (project / "dbenv.toml").write_bytes(corpus[name].read_bytes())
    assert_refused(command, project)


@pytest.mark.parametrize(("args", "env"), bad_input.ARGV, ids=lambda v: " ".join(v)[:60] if isinstance(v, list) else "")
def test_bad_arguments_are_refused(args: list[str], env: dict[str, str], project: Path) -> None:
    assert_refused(args, project, env)


@pytest.mark.parametrize("command", [["up", "-b", "x", "-y", "-r", "dynamodb-autoscaling"], ["preview", "-b", "x", "-r",
                                     "dynamodb-autoscaling"], ["down", "-b", "x"], ["cancel", "-b", "x"],
                                     ["shared", "up"], ["local", "start"], ["reap"]])
def test_state_writing_commands_outside_a_project_say_so(command: list[str], tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    monkeypatch.chdir(outside)
    monkeypatch.setattr(workspace, "find_project_dir", lambda start=None: outside)
    result = runner.invoke(cli.app, command)
    assert result.exit_code == 2 and "no dbenv project" in result.stderr, result.output
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize("command", [["ls"], ["outputs", "-b", "x"], ["reap", "--dry-run"], ["config", "show"],
                                     ["local", "status"], ["local", "stop"], ["plan", "-b", "x", "-r", "all"]])
def test_read_only_commands_create_nothing(command: list[str], project: Path) -> None:
    """With no CLI: ls and reap --dry-run find no state and say so; nothing appears in the project."""
    result = runner.invoke(cli.app, command)
    assert result.exit_code in (0, 1), result.output
    assert "Traceback" not in result.output
    assert not (project / ".dbenv").exists()
