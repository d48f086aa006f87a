"""A stand-in for ``pulumi.automation`` at the seam ``automation.operations.engine.Engine`` uses.

It keeps a backend's state in memory (stacks, config, tags, outputs,
history, locks) and speaks the real API: every call is checked against the
signature of the real ``Stack`` / ``LocalWorkspace`` method of the same name,
results are the real ``UpResult``/``PreviewResult``/``DestroyResult``/
``UpdateSummary``/``OutputValue``/``StackSummary`` classes, errors come from
the real ``create_command_error`` (so the CLI's stderr text decides the
error type, as it does for real), and ``on_event`` receives real
``EngineEvent`` objects decoded from the engine's JSON event format.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pulumi.automation as auto
from pulumi.automation import errors as auto_errors
from pulumi.automation._local_workspace import _is_inline_program, _is_local_program
from pulumi.automation._stack import DestroyResult, PreviewResult, UpdateSummary, UpResult
from pulumi.automation._workspace import StackSummary

PROJECT = "db-recipes"


def _checked(real: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """Fail like Python would if the real method were called with these arguments."""
    inspect.signature(real).bind(None, *args, **kwargs)


def lock_stderr(stack: str) -> str:
    return ("error: the stack is currently locked by 1 lock(s). Either wait for the other process(es) to end or "
            "delete the lock file with `pulumi cancel`.\n"
            f"  file:///srv/state/.pulumi/locks/organization/{PROJECT}/{stack}/7d3c.json: "
            "created by dev@laptop (pid 4242) at 2026-11-27T10:00:00Z")


def resource_events(stack: str, resources: list[tuple[str, str, str]], *, fail: str | None = None,
                    seq: int = 0) -> list[dict[str, Any]]:
    """Engine events in the CLI's JSON format for (op, type, name) steps; ``fail`` names a failing one."""
    events: list[dict[str, Any]] = [{"sequence": seq, "timestamp": 1, "preludeEvent": {"config": {}}}]
    for op, type_, name in resources:
        urn = f"urn:pulumi:{stack}::{PROJECT}::{type_}::{name}"
        meta = {"op": op, "urn": urn, "type": type_, "provider": ""}
        events.append({"sequence": len(events), "timestamp": 2, "resourcePreEvent": {"metadata": meta}})
        if name == fail:
            events.append({"sequence": len(events), "timestamp": 3, "diagnosticEvent": {
                "urn": urn, "message": f"creating {name}: InvalidParameterValue: bad value", "color": "never",
                "severity": "error"}})
            events.append({"sequence": len(events), "timestamp": 3,
                           "resOpFailedEvent": {"metadata": meta, "status": 1, "steps": 1}})
        else:
            events.append({"sequence": len(events), "timestamp": 3, "resOutputsEvent": {"metadata": meta}})
    done = [r for r in resources if r[2] != fail]
    changes: dict[str, int] = {}
    for op, _, _ in done:
        changes[op] = changes.get(op, 0) + 1
    events.append({"sequence": len(events), "timestamp": 4, "summaryEvent": {
        "maybeCorrupt": False, "durationSeconds": 3, "resourceChanges": changes, "PolicyPacks": {}}})
    return events


@dataclass
class StackState:
    config: dict[str, auto.ConfigValue] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, auto.OutputValue] = field(default_factory=dict)
    history: list[UpdateSummary] = field(default_factory=list)
    resources: int = 0
    locked: bool = False


@dataclass
class Script:
    """What the next operations on a stack do: resources to report, outputs, failures."""

    resources: list[tuple[str, str, str]] = field(default_factory=lambda: [
        ("create", "pulumi:providers:aws", "aws"),
        ("create", "aws:ec2/vpc:Vpc", "network-vpc"),
        ("create", "aws:rds/cluster:Cluster", "aurora-cluster"),
    ])
    outputs: dict[str, auto.OutputValue] = field(default_factory=lambda: {
        "aurora-serverless": auto.OutputValue({"endpoint": "db.local", "secret_arn": "arn:aws:secretsmanager:x"},
                                              False),
        "admin_password": auto.OutputValue("hunter2-secret", True),
    })
    fail_resource: str | None = None
    locked_times: int = 0
    destroy_error: str | None = None


class FakeBackend:
    """The state a backend holds, shared by every workspace and stack of the fake."""

    def __init__(self) -> None:
        self.stacks: dict[str, StackState] = {}
        self.scripts: dict[str, Script] = {}
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.work_dirs: dict[str, set[str]] = {}
        self.lock = threading.Lock()
        self.active = 0
        self.max_active = 0

    def script(self, stack: str) -> Script:
        return self.scripts.setdefault(stack, Script())

    def record(self, op: str, stack: str, **kwargs: Any) -> None:
        with self.lock:
            self.calls.append((op, stack, kwargs))

    def ops(self, op: str) -> list[str]:
        return [stack for name, stack, _ in self.calls if name == op]

    def add_stack(self, name: str, tags: dict[str, str] | None = None, resources: int = 3,
                  result: str = "succeeded") -> StackState:
        state = StackState(tags=dict(tags or {}), resources=resources)
        state.history.append(_summary("update", result, resources))
        self.stacks[name] = state
        return state


def _summary(kind: str, result: str, resources: int) -> UpdateSummary:
    return UpdateSummary(kind=kind, start_time=datetime(2026, 11, 27, 10, 0, 0), message="", environment={},
                         config={}, result=result, end_time=datetime(2026, 11, 27, 10, 5, 0), version=1,
                         resource_changes={"create": resources})


def _not_found(name: str) -> auto_errors.CommandError:
    return auto_errors.create_command_error(
        auto.CommandResult(stdout="", stderr=f"error: no stack named '{name}' found", code=255))


class FakeWorkspace:
    """The LocalWorkspace methods the code calls, over the shared FakeBackend."""

    def __init__(self, backend: FakeBackend, **options: Any) -> None:
        _checked(auto.LocalWorkspace.__init__, **options)
        self.backend = backend
        self.work_dir = options.get("work_dir")
        self.program = options.get("program")
        self.env_vars = options.get("env_vars") or {}
        self.secrets_provider = options.get("secrets_provider")
        self.project_settings_value = options.get("project_settings")
        self.pulumi_command = options.get("pulumi_command")

    def _state(self, stack_name: str) -> StackState:
        state = self.backend.stacks.get(stack_name)
        if state is None:
            raise _not_found(stack_name)
        return state

    def create_stack(self, stack_name: str) -> None:
        _checked(auto.LocalWorkspace.create_stack, stack_name)
        if stack_name in self.backend.stacks:
            raise auto_errors.create_command_error(
                auto.CommandResult("", f"error: stack '{stack_name}' already exists", 255))
        self.backend.stacks[stack_name] = StackState()
        self.backend.record("create", stack_name)

    def select_stack(self, stack_name: str) -> None:
        _checked(auto.LocalWorkspace.select_stack, stack_name)
        self._state(stack_name)
        self.backend.work_dirs.setdefault(stack_name, set()).add(str(self.work_dir))

    def remove_stack(self, stack_name: str, force: bool | None = None, preserve_config: bool | None = None) -> None:
        _checked(auto.LocalWorkspace.remove_stack, stack_name, force=force, preserve_config=preserve_config)
        self._state(stack_name)
        del self.backend.stacks[stack_name]
        self.backend.record("remove", stack_name)

    def list_stacks(self, include_all: bool | None = None) -> list[StackSummary]:
        _checked(auto.LocalWorkspace.list_stacks, include_all=include_all)
        return [StackSummary(name=name, current=False, update_in_progress=state.locked or None,
                             last_update=datetime(2026, 11, 27, 10, 5, 0), resource_count=state.resources)
                for name, state in sorted(self.backend.stacks.items())]

    def list_tags(self, stack_name: str) -> dict[str, str]:
        _checked(auto.LocalWorkspace.list_tags, stack_name)
        return dict(self._state(stack_name).tags)

    def set_tag(self, stack_name: str, key: str, value: str) -> None:
        _checked(auto.LocalWorkspace.set_tag, stack_name, key, value)
        self._state(stack_name).tags[key] = value
        self.backend.record("set_tag", stack_name, key=key, value=value)

    def get_all_config(self, stack_name: str) -> dict[str, auto.ConfigValue]:
        _checked(auto.LocalWorkspace.get_all_config, stack_name)
        return dict(self._state(stack_name).config)

    def set_all_config(self, stack_name: str, config: dict[str, auto.ConfigValue], *, path: bool = False) -> None:
        _checked(auto.LocalWorkspace.set_all_config, stack_name, config, path=path)
        for key, value in config.items():
            assert isinstance(value, auto.ConfigValue) and isinstance(value.value, str), (key, value)
        self._state(stack_name).config.update(config)

    def remove_all_config(self, stack_name: str, keys: list[str], *, path: bool = False) -> None:
        _checked(auto.LocalWorkspace.remove_all_config, stack_name, keys, path=path)
        for key in keys:
            self._state(stack_name).config.pop(key, None)

    def stack_outputs(self, stack_name: str) -> dict[str, auto.OutputValue]:
        _checked(auto.LocalWorkspace.stack_outputs, stack_name)
        return dict(self._state(stack_name).outputs)


class FakeStack:
    """The Stack methods the code calls; lifecycle operations follow the stack's Script."""

    def __init__(self, name: str, workspace: FakeWorkspace) -> None:
        self.name = name
        self.workspace = workspace

    @property
    def _backend(self) -> FakeBackend:
        return self.workspace.backend

    def _emit(self, on_event: Any, events: list[dict[str, Any]]) -> None:
        if on_event is None:
            return
        for data in events:
            on_event(auto.EngineEvent.from_json(data))

    def _begin(self, op: str, kwargs: dict[str, Any]) -> Script:
        self._backend.record(op, self.name, **kwargs)
        script = self._backend.script(self.name)
        state = self.workspace._state(self.name)
        if state.locked or script.locked_times > 0:
            script.locked_times = max(0, script.locked_times - 1)
            raise auto_errors.create_command_error(auto.CommandResult("", lock_stderr(self.name), 255))
        with self._backend.lock:
            self._backend.active += 1
            self._backend.max_active = max(self._backend.max_active, self._backend.active)
        return script

    def _end(self) -> None:
        with self._backend.lock:
            self._backend.active -= 1

    def up(self, **kwargs: Any) -> UpResult:
        _checked(auto.Stack.up, **kwargs)
        script = self._begin("up", kwargs)
        try:
            state = self.workspace._state(self.name)
            self._emit(kwargs.get("on_event"), resource_events(self.name, script.resources,
                                                                fail=script.fail_resource))
            if script.fail_resource:
                state.history.insert(0, _summary("update", "failed", 0))
                raise auto_errors.create_command_error(auto.CommandResult(
                    stdout=f"  aws:rds:Cluster ({script.fail_resource}):\n    error: creating {script.fail_resource}: "
                           "InvalidParameterValue: bad value\n",
                    stderr="error: update failed", code=255))
            state.outputs = dict(script.outputs)
            state.resources = len(script.resources)
            state.history.insert(0, _summary("update", "succeeded", len(script.resources)))
            return UpResult(stdout="", stderr="", summary=state.history[0], outputs=self.outputs())
        finally:
            self._end()

    def preview(self, **kwargs: Any) -> PreviewResult:
        _checked(auto.Stack.preview, **kwargs)
        script = self._begin("preview", kwargs)
        try:
            events = resource_events(self.name, script.resources)
            self._emit(kwargs.get("on_event"), events)
            return PreviewResult(stdout="", stderr="", change_summary=events[-1]["summaryEvent"]["resourceChanges"])
        finally:
            self._end()

    def destroy(self, **kwargs: Any) -> DestroyResult:
        _checked(auto.Stack.destroy, **kwargs)
        script = self._begin("destroy", kwargs)
        try:
            state = self.workspace._state(self.name)
            if script.destroy_error:
                raise auto_errors.create_command_error(
                    auto.CommandResult("", f"error: {script.destroy_error}", 255))
            steps = [("delete", t, n) for _, t, n in script.resources]
            self._emit(kwargs.get("on_event"), resource_events(self.name, steps))
            summary = _summary("destroy", "succeeded", 0)
            summary.resource_changes = {"delete": state.resources}
            state.resources, state.outputs = 0, {}
            if kwargs.get("remove"):
                self.workspace.remove_stack(self.name)
            return DestroyResult(stdout="", stderr="", summary=summary)
        finally:
            self._end()

    def outputs(self) -> dict[str, auto.OutputValue]:
        return self.workspace.stack_outputs(self.name)

    def list_tags(self) -> dict[str, str]:
        return self.workspace.list_tags(self.name)

    def set_tag(self, key: str, value: str) -> None:
        self.workspace.set_tag(self.name, key, value)

    def get_all_config(self) -> dict[str, auto.ConfigValue]:
        return self.workspace.get_all_config(self.name)

    def set_all_config(self, config: dict[str, auto.ConfigValue], *, path: bool = False) -> None:
        self.workspace.set_all_config(self.name, config, path=path)

    def remove_all_config(self, keys: list[str], *, path: bool = False) -> None:
        self.workspace.remove_all_config(self.name, keys, path=path)

    def history(self, page_size: int | None = None, page: int | None = None,
                show_secrets: bool = True) -> list[UpdateSummary]:
        _checked(auto.Stack.history, page_size=page_size, page=page, show_secrets=show_secrets)
        items = self.workspace._state(self.name).history
        return items[:page_size] if page_size else list(items)

    def info(self, show_secrets: bool = True) -> UpdateSummary | None:
        _checked(auto.Stack.info, show_secrets)
        history = self.history(page_size=1, show_secrets=show_secrets)
        return history[0] if history else None

    def cancel(self) -> None:
        _checked(auto.Stack.cancel)
        state = self.workspace._state(self.name)
        if not state.locked:
            raise auto_errors.create_command_error(
                auto.CommandResult("", "error: no update is currently in progress", 255))
        state.locked = False
        self._backend.record("cancel", self.name)


class FakeAutomation:
    """Module-shaped: the functions and classes ``Engine`` takes from ``pulumi.automation``."""

    LocalWorkspaceOptions = auto.LocalWorkspaceOptions
    ProjectSettings = auto.ProjectSettings
    ProjectBackend = auto.ProjectBackend
    ConfigValue = auto.ConfigValue
    CommandError = auto.CommandError
    StackNotFoundError = auto.StackNotFoundError
    ConcurrentUpdateError = auto.ConcurrentUpdateError

    def __init__(self, backend: FakeBackend | None = None) -> None:
        self.backend = backend or FakeBackend()
        self.options: list[Any] = []

    def LocalWorkspace(self, **options: Any) -> FakeWorkspace:  # noqa: N802 - the real name
        return FakeWorkspace(self.backend, **options)

    def _stack(self, real: Callable[..., Any], create: bool, stack_name: str, project_name: str | None = None,
               program: Any = None, work_dir: str | None = None, opts: Any = None) -> FakeStack:
        inspect.signature(real).bind(stack_name, project_name=project_name, program=program, work_dir=work_dir,
                                     opts=opts)
        # The real helpers dispatch on these: an inline program needs program and project_name,
        # anything else needs work_dir; neither is a ValueError.
        args = {"program": program, "project_name": project_name, "work_dir": work_dir}
        if _is_inline_program(**args):
            assert project_name == PROJECT
        elif _is_local_program(**args):
            opts.work_dir = work_dir
        else:
            raise ValueError(f"unexpected args: {' '.join(args)}")
        self.options.append(opts)
        ws = FakeWorkspace(self.backend, **opts.__dict__)
        try:
            ws.select_stack(stack_name)
        except auto.StackNotFoundError:
            if not create:
                raise
            ws.create_stack(stack_name)
            ws.select_stack(stack_name)
        return FakeStack(stack_name, ws)

    def create_or_select_stack(self, stack_name: str, **kwargs: Any) -> FakeStack:
        return self._stack(auto.create_or_select_stack, True, stack_name, **kwargs)

    def select_stack(self, stack_name: str, **kwargs: Any) -> FakeStack:
        return self._stack(auto.select_stack, False, stack_name, **kwargs)


# =========================================================================== tests

import json  # noqa: E402
from datetime import UTC, timedelta  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from automation.commands import progress  # noqa: E402
from automation.operations import environments as envs  # noqa: E402
from automation.operations.engine import Engine, config_values, engine_error, format_time, make_tags, mask_outputs  # noqa: E402
from automation.operations.errors import BadInput, NotFound, OperationFailed, Refused, StackLocked  # noqa: E402
from automation.operations.prepare import prepare, prepare_shared  # noqa: E402
from automation.workspace import load_settings  # noqa: E402
from components import naming  # noqa: E402
from tests.scripted_pulumi import FAKE_CLI, cli_log, install_scripted_cli  # noqa: E402, F401 - FAKE_CLI: also read from here

NOW = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)
ENDPOINT = "http://127.0.0.1:45999"


class StubLocal:
    """Stands in for LocalAws (tested for real in test_local_aws.py)."""

    def __init__(self) -> None:
        self.starts = 0

    def ensure_running(self) -> str:
        self.starts += 1
        return ENDPOINT


def make_settings(tmp_path: Path, toml: str = "", **flags: Any) -> Any:
    if toml:
        (tmp_path / "dbenv.toml").write_text(toml, encoding="utf-8")
    return load_settings(tmp_path, flags=flags, env={})


def make_service(tmp_path: Path, toml: str = "", *, now: datetime = NOW, **flags: Any) -> tuple[Any, FakeAutomation]:
    settings = make_settings(tmp_path, toml, **flags)
    fake = FakeAutomation()
    engine = Engine(settings, auto=fake, command=object())
    sleeps: list[float] = []
    service = envs.Environments(settings, engine, local=StubLocal(), identity=lambda: ("dev@example.com", "abc123"),
                                clock=lambda: now, sleep=sleeps.append)
    service.sleeps = sleeps  # type: ignore[attr-defined]
    return service, fake


def prepared(service: Any, branch: str = "feature/x", recipes: str = "dynamodb-autoscaling", **kw: Any) -> Any:
    return prepare(service.settings, branch=branch, recipes=recipes, **kw)


# ----------------------------------------------------------------- the fake is faithful


def test_fake_rejects_arguments_the_real_api_does_not_take(tmp_path: Path) -> None:
    service, fake = make_service(tmp_path)
    stack = service.engine.stack("s1", None)
    with pytest.raises(TypeError):
        stack.up(no_such_argument=True)
    with pytest.raises(TypeError):
        stack.destroy(remove_stack=True)
    with pytest.raises(auto.StackNotFoundError):
        service.engine.stack("missing", None, create=False)


# ----------------------------------------------------------------- pure rules


@pytest.mark.parametrize("branch", ["main", "master", "prod", "prod-eu", "production", "staging"])
def test_protected_branches(branch: str) -> None:
    assert envs.is_protected(branch)


@pytest.mark.parametrize("branch", ["feature/main", "mainline", "stage", "dev", "my-prod"])
def test_unprotected_branches(branch: str) -> None:
    assert not envs.is_protected(branch)


def test_tags_keep_created_at_and_renew_expiry() -> None:
    first = make_tags(branch="feature/x", now=NOW, ttl=timedelta(hours=72), owner="a@b", commit="c1",
                           existing={}, shared_network=False)
    assert first == {"branch": "feature/x", "created-at": "2026-11-27T12:00:00Z", "expires-at": "2026-11-30T12:00:00Z",
                     "ephemeral": "true", "owner": "a@b", "commit": "c1", "network": "own"}
    later = make_tags(branch="feature/x", now=NOW + timedelta(days=1), ttl=timedelta(hours=1), owner="a@b",
                           commit=None, existing=first, shared_network=True)
    assert later["created-at"] == first["created-at"]
    assert later["expires-at"] == "2026-11-28T13:00:00Z"
    assert later["commit"] == "unknown" and later["network"] == "shared"


def test_mask_outputs_hides_secret_values() -> None:
    outputs = {"endpoint": auto.OutputValue("db.local", False), "password": auto.OutputValue("s3cr3t", True)}
    assert mask_outputs(outputs) == {"endpoint": "db.local", "password": "[secret]"}
    assert mask_outputs(outputs, show_secrets=True)["password"] == "s3cr3t"


# ----------------------------------------------------------------- validation before touching anything


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"branch": "a..b"}, "invalid branch name"),
    ({"recipes": "nope"}, "unknown recipe 'nope'"),
    ({"recipes": ""}, "choose recipes"),
])
def test_bad_input_is_rejected_before_any_engine_call(tmp_path: Path, kwargs: dict, message: str) -> None:
    service, fake = make_service(tmp_path)
    args = {"branch": "feature/x", "recipes": "all", **kwargs}
    with pytest.raises(BadInput, match=message):
        prepare(service.settings, branch=args["branch"], recipes=args["recipes"] or None)
    assert fake.backend.calls == [] and fake.backend.stacks == {}


def test_bad_config_file_is_bad_input(tmp_path: Path) -> None:
    service, _ = make_service(tmp_path)
    bad = tmp_path / "Pulumi.x.yaml"
    bad.write_text("config:\n  db-recipes:dynamodb-autoscaling:\n    no_such_key: 1\n", encoding="utf-8")
    with pytest.raises(BadInput, match="no_such_key"):
        prepared(service, config_file=bad)
    with pytest.raises(BadInput, match="cannot read config file"):
        prepared(service, config_file=tmp_path / "missing.yaml")


def test_aws_target_with_s3_backend_needs_a_secrets_provider(tmp_path: Path) -> None:
    service, _ = make_service(tmp_path, 'target = "aws"\nbackend = "s3://bucket/state"\n')
    with pytest.raises(BadInput, match="secrets_provider"):
        prepared(service)


def test_prepare_builds_the_stack_config(tmp_path: Path) -> None:
    service, _ = make_service(tmp_path, 'region = "eu-west-1"\n')
    config_file = tmp_path / "Pulumi.dev.yaml"
    config_file.write_text("config:\n  db-recipes:dynamodb-autoscaling:\n    table_name: orders\n", encoding="utf-8")
    prep = prepared(service, config_file=config_file)
    assert prep.stack == naming.stack_name("feature/x")
    assert prep.config["db-recipes:recipes"] == "dynamodb-autoscaling"
    assert prep.config["db-recipes:branch"] == "feature/x"
    assert prep.config["db-recipes:ephemeral"] is True
    assert prep.config["aws:region"] == "eu-west-1"
    assert prep.config["db-recipes:dynamodb-autoscaling"] == {"table_name": "orders"}
    assert prep.recipes == ("dynamodb-autoscaling",)


def test_shared_network_points_branch_stacks_at_the_shared_stack(tmp_path: Path) -> None:
    service, _ = make_service(tmp_path, "shared_network = true\n")
    prep = prepared(service, recipes="aurora-serverless")
    assert prep.config["db-recipes:network"] == {"shared_stack": "organization/db-recipes/shared"}
    assert prep.shared_network


# ----------------------------------------------------------------- up


def test_up_creates_tags_configures_and_deploys_in_its_own_work_dir(tmp_path: Path) -> None:
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "PulumiPolicy.yaml").write_text("runtime: python\n", encoding="utf-8")
    service, fake = make_service(tmp_path)
    events: list[Any] = []
    outcome = service.up(prepared(service), on_event=events.append)
    stack = naming.stack_name("feature/x")
    state = fake.backend.stacks[stack]
    assert state.tags["ephemeral"] == "true" and state.tags["branch"] == "feature/x"
    assert state.tags["owner"] == "dev@example.com" and state.tags["commit"] == "abc123"
    assert state.tags["expires-at"] == "2026-11-30T12:00:00Z"
    assert {k: v.value for k, v in state.config.items()} == {
        "db-recipes:recipes": "dynamodb-autoscaling", "db-recipes:branch": "feature/x",
        "db-recipes:ephemeral": "true", "aws:region": "us-east-1"}
    up_kwargs = next(kw for op, name, kw in fake.backend.calls if op == "up")
    assert up_kwargs["policy_packs"] == [str(tmp_path / "policies")]
    assert fake.backend.work_dirs[stack] == {str(tmp_path / ".dbenv" / "work" / stack)}
    opts = fake.options[-1]
    assert opts.project_settings.backend.url == (tmp_path / ".dbenv" / "state").resolve().as_uri()
    assert opts.secrets_provider == "passphrase"
    passphrase = Path(opts.env_vars["PULUMI_CONFIG_PASSPHRASE_FILE"])
    assert passphrase.stat().st_mode & 0o777 == 0o600
    assert outcome.result == "succeeded" and outcome.outputs["admin_password"].secret
    assert any(e.res_outputs_event for e in events) and isinstance(events[0], auto.EngineEvent)


def test_tags_are_set_before_the_deploy(tmp_path: Path) -> None:
    service, fake = make_service(tmp_path)
    fake.backend.script(naming.stack_name("feature/x")).fail_resource = "aurora-cluster"
    with pytest.raises(OperationFailed):
        service.up(prepared(service))
    ops = [op for op, _, _ in fake.backend.calls]
    assert ops.index("set_tag") < ops.index("up")
    assert fake.backend.stacks[naming.stack_name("feature/x")].tags["ephemeral"] == "true"


def test_second_up_keeps_created_at_and_drops_stale_config(tmp_path: Path) -> None:
    service, fake = make_service(tmp_path)
    config_file = tmp_path / "Pulumi.dev.yaml"
    config_file.write_text("config:\n  db-recipes:dynamodb-autoscaling:\n    table_name: orders\n", encoding="utf-8")
    service.up(prepared(service, config_file=config_file))
    later = envs.Environments(service.settings, service.engine, local=StubLocal(),
                              identity=lambda: ("dev@example.com", "def456"), clock=lambda: NOW + timedelta(hours=5))
    later.up(prepared(later))
    state = fake.backend.stacks[naming.stack_name("feature/x")]
    assert state.tags["created-at"] == "2026-11-27T12:00:00Z"
    assert state.tags["expires-at"] == "2026-11-30T17:00:00Z"
    assert state.tags["commit"] == "def456"
    assert "db-recipes:dynamodb-autoscaling" not in state.config


def test_up_failure_names_the_engine_error_and_the_failed_resource(tmp_path: Path) -> None:
    service, fake = make_service(tmp_path)
    stack = naming.stack_name("feature/x")
    fake.backend.script(stack).fail_resource = "aurora-cluster"
    with pytest.raises(OperationFailed) as caught:
        service.up(prepared(service))
    message = str(caught.value)
    assert "InvalidParameterValue: bad value" in message
    assert "aws:rds/cluster:Cluster aurora-cluster" in message
    assert caught.value.failed_resources == ("aws:rds/cluster:Cluster aurora-cluster",)


def test_engine_error_is_read_from_the_command_output_without_events() -> None:
    err = auto_errors.create_command_error(auto.CommandResult(
        stdout="Diagnostics:\n  aws:ec2:Vpc (network-vpc):\n    error: creating EC2 VPC: UnauthorizedOperation\n",
        stderr="error: update failed", code=255))
    assert engine_error(err) == "error: creating EC2 VPC: UnauthorizedOperation; error: update failed"


def test_locked_stack_says_which_lock_and_how_to_clear_it(tmp_path: Path) -> None:
    service, fake = make_service(tmp_path)
    stack = naming.stack_name("feature/x")
    fake.backend.script(stack).locked_times = 1
    with pytest.raises(StackLocked) as caught:
        service.up(prepared(service))
    message = str(caught.value)
    assert f".pulumi/locks/organization/db-recipes/{stack}/7d3c.json" in message
    assert "dbenv cancel --branch feature/x" in message and "--wait" in message
    assert service.sleeps == []


def test_wait_retries_a_locked_stack_with_backoff(tmp_path: Path) -> None:
    service, fake = make_service(tmp_path)
    fake.backend.script(naming.stack_name("feature/x")).locked_times = 3
    outcome = service.up(prepared(service), wait=True)
    assert outcome.result == "succeeded"
    assert service.sleeps == [2.0, 4.0, 8.0]


def test_wait_gives_up_after_the_lock_wait(tmp_path: Path) -> None:
    service, fake = make_service(tmp_path)
    service.lock_wait = timedelta(seconds=10)
    fake.backend.script(naming.stack_name("feature/x")).locked_times = 100
    with pytest.raises(StackLocked, match="after waiting 14s"):
        service.up(prepared(service), wait=True)
    assert service.sleeps == [2.0, 4.0, 8.0]


def test_preview_attaches_the_policy_pack(tmp_path: Path) -> None:
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "PulumiPolicy.yaml").write_text("runtime: python\n", encoding="utf-8")
    service, fake = make_service(tmp_path)
    outcome = service.preview(prepared(service))
    kwargs = next(kw for op, _, kw in fake.backend.calls if op == "preview")
    assert kwargs["policy_packs"] == [str(tmp_path / "policies")]
    assert kwargs["policy_pack_configs"] is None  # this pack has no default config file
    assert outcome.changes == {"create": 3}
    assert fake.backend.ops("up") == []


def test_up_and_preview_hand_the_packs_default_config_to_the_engine(tmp_path: Path) -> None:
    pack = tmp_path / "policies"
    pack.mkdir()
    (pack / "PulumiPolicy.yaml").write_text("runtime: python\n", encoding="utf-8")
    (pack / "config.default.json").write_text('{"rds-storage-encrypted": {"exemptions": []}}', encoding="utf-8")
    service, fake = make_service(tmp_path)
    service.preview(prepared(service))
    service.up(prepared(service))
    for op in ("preview", "up"):
        kwargs = next(kw for name, _, kw in fake.backend.calls if name == op)
        assert kwargs["policy_pack_configs"] == [str(pack / "config.default.json")]


# ----------------------------------------------------------------- down


@pytest.mark.parametrize("branch", ["main", "prod-eu", "staging"])
def test_down_refuses_protected_branches_without_force(tmp_path: Path, branch: str) -> None:
    service, fake = make_service(tmp_path)
    fake.backend.add_stack(naming.stack_name(branch), {"ephemeral": "true", "branch": branch})
    with pytest.raises(Refused, match="protected branch"):
        service.down(branch)
    assert fake.backend.ops("destroy") == []
    assert service.down(branch, force=True).existed
    assert naming.stack_name(branch) not in fake.backend.stacks


def test_down_refuses_a_stack_not_tagged_ephemeral(tmp_path: Path) -> None:
    service, fake = make_service(tmp_path)
    fake.backend.add_stack(naming.stack_name("feature/y"), {"branch": "feature/y"})
    with pytest.raises(Refused, match="not tagged ephemeral"):
        service.down("feature/y")
    assert fake.backend.ops("destroy") == []


def test_down_destroys_and_removes(tmp_path: Path) -> None:
    service, fake = make_service(tmp_path)
    service.up(prepared(service))
    events: list[Any] = []
    outcome = service.down("feature/x", on_event=events.append)
    stack = naming.stack_name("feature/x")
    assert outcome.existed and stack not in fake.backend.stacks
    kwargs = next(kw for op, _, kw in fake.backend.calls if op == "destroy")
    assert kwargs["remove"] is True and kwargs["run_program"] is True and callable(kwargs["program"])
    assert any(e.res_outputs_event and e.res_outputs_event.metadata.op == auto.OpType.DELETE for e in events)


def test_down_without_a_stack_is_a_no_op(tmp_path: Path) -> None:
    service, fake = make_service(tmp_path)
    outcome = service.down("feature/never")
    assert not outcome.existed and fake.backend.ops("destroy") == []
    assert service.local.starts == 0  # nothing started for nothing


# ----------------------------------------------------------------- list and reap


def _tags(branch: str, expires: datetime, *, ephemeral: bool = True, created: datetime | None = None) -> dict:
    return {"branch": branch, "ephemeral": "true" if ephemeral else "false",
            "created-at": format_time(created or expires - timedelta(days=3)),
            "expires-at": format_time(expires)}


def test_list_reports_age_expiry_resources_result_and_lock(tmp_path: Path) -> None:
    service, fake = make_service(tmp_path)
    fake.backend.add_stack("old-1", _tags("old", NOW - timedelta(hours=1)), resources=7, result="failed")
    fake.backend.add_stack("new-1", _tags("new", NOW + timedelta(hours=5))).locked = True
    fake.backend.add_stack("shared", {"ephemeral": "false"})
    infos = {info.stack: info for info in service.list()}
    assert infos["old-1"].expired and infos["old-1"].resource_count == 7 and infos["old-1"].last_result == "failed"
    assert infos["old-1"].age == timedelta(days=3, hours=1)
    assert not infos["new-1"].expired and infos["new-1"].locked
    assert not infos["shared"].expired and not infos["shared"].ephemeral
    as_json = infos["old-1"].to_json()
    assert as_json["expires_at"] == "2026-11-27T11:00:00Z" and as_json["expired"] is True


def test_a_lock_file_on_a_file_backend_shows_as_locked(tmp_path: Path) -> None:
    service, fake = make_service(tmp_path)
    fake.backend.add_stack("s-1", _tags("s", NOW + timedelta(hours=1)))
    lock_dir = service.settings.lock_dir("s-1")
    lock_dir.mkdir(parents=True)
    (lock_dir / "abc.json").write_text("{}", encoding="utf-8")
    assert service.list()[0].locked


def test_reap_destroys_only_expired_ephemeral_stacks_oldest_first(tmp_path: Path) -> None:
    service, fake = make_service(tmp_path, "parallel = 1\n")
    fake.backend.add_stack("b-2", _tags("b", NOW - timedelta(hours=1)))
    fake.backend.add_stack("a-1", _tags("a", NOW - timedelta(hours=9)))
    fake.backend.add_stack("keep-1", _tags("keep", NOW + timedelta(hours=1)))
    fake.backend.add_stack("durable", _tags("durable", NOW - timedelta(days=9), ephemeral=False))
    fake.backend.add_stack("untagged", {})
    fake.backend.add_stack("main-1", _tags("main", NOW - timedelta(days=1)))
    results = service.reap()
    assert [(r.stack, r.status) for r in results] == [("main-1", "skipped"), ("a-1", "destroyed"),
                                                      ("b-2", "destroyed")]
    assert fake.backend.ops("destroy") == ["a-1", "b-2"]
    assert set(fake.backend.stacks) == {"keep-1", "durable", "untagged", "main-1"}


def test_reap_dry_run_and_older_than(tmp_path: Path) -> None:
    service, fake = make_service(tmp_path)
    fake.backend.add_stack("young-1", _tags("young", NOW + timedelta(days=2), created=NOW - timedelta(days=1)))
    fake.backend.add_stack("aged-1", _tags("aged", NOW + timedelta(days=2), created=NOW - timedelta(days=8)))
    results = service.reap(dry_run=True, older_than=timedelta(days=7))
    assert [(r.stack, r.status) for r in results] == [("aged-1", "would-destroy")]
    assert fake.backend.ops("destroy") == [] and "aged-1" in fake.backend.stacks


def test_reap_keeps_going_after_a_failure_and_respects_the_bound(tmp_path: Path) -> None:
    service, fake = make_service(tmp_path, "parallel = 2\n")
    for index in range(6):
        fake.backend.add_stack(f"s-{index}", _tags(f"s{index}", NOW - timedelta(hours=index + 1)))
    fake.backend.script("s-2").destroy_error = "deleting DB cluster: InvalidDBClusterStateFault"
    seen: list[str] = []
    results = service.reap(on_result=lambda r: seen.append(r.stack))
    by_stack = {r.stack: r for r in results}
    assert by_stack["s-2"].status == "failed" and "InvalidDBClusterStateFault" in by_stack["s-2"].detail
    assert sorted(s for s, r in by_stack.items() if r.status == "destroyed") == ["s-0", "s-1", "s-3", "s-4", "s-5"]
    assert sorted(seen) == sorted(by_stack)
    assert 1 <= fake.backend.max_active <= 2
    assert set(fake.backend.stacks) == {"s-2"}


def test_reap_never_destroys_a_stack_whose_tag_changed_meanwhile(tmp_path: Path) -> None:
    service, fake = make_service(tmp_path)
    fake.backend.add_stack("s-1", _tags("s", NOW - timedelta(hours=1)))
    env = service.list()[0]
    fake.backend.stacks["s-1"].tags["ephemeral"] = "false"
    result = service._reap_one(env)
    assert result.status == "failed" and "not tagged ephemeral" in result.detail
    assert "s-1" in fake.backend.stacks


# ----------------------------------------------------------------- outputs, cancel, shared


def test_outputs_are_masked_unless_asked(tmp_path: Path) -> None:
    service, _ = make_service(tmp_path)
    service.up(prepared(service))
    stack = naming.stack_name("feature/x")
    assert service.outputs(stack)["admin_password"] == "[secret]"
    assert service.outputs(stack, show_secrets=True)["admin_password"] == "hunter2-secret"
    with pytest.raises(NotFound):
        service.outputs("nothing-here")


def test_cancel_clears_a_lock(tmp_path: Path) -> None:
    service, fake = make_service(tmp_path)
    fake.backend.add_stack("s-1", {}).locked = True
    service.cancel("s-1")
    assert not fake.backend.stacks["s-1"].locked
    with pytest.raises(OperationFailed, match="no update is currently in progress"):
        service.cancel("s-1")


def test_branch_up_creates_the_shared_stack_on_first_need(tmp_path: Path) -> None:
    service, fake = make_service(tmp_path, "shared_network = true\n")
    fake.backend.script("shared").outputs = {"network": auto.OutputValue({"vpc_id": "vpc-1"}, False)}
    service.up(prepared(service, recipes="aurora-serverless"))
    assert fake.backend.ops("up") == ["shared", naming.stack_name("feature/x")]
    assert fake.backend.stacks["shared"].tags["ephemeral"] == "false"
    assert fake.backend.stacks[naming.stack_name("feature/x")].tags["network"] == "shared"
    service.up(prepared(service, recipes="aurora-serverless"))
    assert fake.backend.ops("up").count("shared") == 1


def test_shared_down_refuses_while_branch_stacks_use_it(tmp_path: Path) -> None:
    service, fake = make_service(tmp_path, "shared_network = true\n")
    fake.backend.script("shared").outputs = {"network": auto.OutputValue({"vpc_id": "vpc-1"}, False)}
    service.up(prepared(service, recipes="aurora-serverless"))
    with pytest.raises(Refused, match=naming.stack_name("feature/x")):
        service.shared_down()
    service.down("feature/x")
    assert service.shared_down().existed and "shared" not in fake.backend.stacks


# ----------------------------------------------------------------- the inline programs, under Pulumi mocks


def run_program(program: Callable[[], None], config: dict[str, Any], stack: str,
                outputs: dict[str, Any] | None = None) -> list[tuple[str, str, dict]]:
    """Run an inline program under Pulumi mocks; return (type, name, inputs) of each registration."""
    import asyncio

    import pulumi
    from pulumi.runtime import stack as runtime_stack
    from pulumi.runtime.sync_await import _sync_await

    recorded: list[tuple[str, str, dict]] = []

    class Mocks(pulumi.runtime.Mocks):
        def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
            recorded.append((args.typ, args.name, args.inputs))
            state = dict(args.inputs)
            if args.typ == "pulumi:pulumi:StackReference":
                state["outputs"] = outputs or {}
            return f"{args.name}-id", {**state, "arn": f"arn:aws:x:::{args.name}"}

        def call(self, args: pulumi.runtime.MockCallArgs) -> dict:
            return {"names": ["us-east-1a", "us-east-1b"], "partition": "aws", "region": "us-east-1",
                    "accountId": "123456789012"}

    result: dict[str, Any] = {}

    def work() -> None:
        asyncio.set_event_loop(asyncio.new_event_loop())
        try:
            pulumi.runtime.set_mocks(Mocks(), project="db-recipes", stack=stack, preview=False)
            pulumi.runtime.set_all_config({k: v if isinstance(v, str) else json.dumps(v) for k, v in config.items()})
            _sync_await(runtime_stack.run_pulumi_func(program))
        except BaseException as err:  # noqa: BLE001 - re-raised below
            result["error"] = err

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return recorded


def test_local_program_points_every_service_at_the_local_endpoint(tmp_path: Path) -> None:
    from automation import local_aws

    service, _ = make_service(tmp_path)
    prep = prepared(service)
    recorded = run_program(service.branch_program(), config_values(prep.config), prep.stack)
    provider = next(inputs for typ, _, inputs in recorded if typ == "pulumi:providers:aws")
    endpoints = json.loads(provider["endpoints"])[0]
    assert endpoints == {service_name: ENDPOINT for service_name in local_aws.SERVICES}
    for flag in ("skipCredentialsValidation", "skipRequestingAccountId", "skipMetadataApiCheck", "s3UsePathStyle"):
        assert provider[flag] == "true", flag
    from pulumi.runtime import rpc

    assert rpc.is_rpc_secret(provider["secretKey"]) and rpc.unwrap_rpc_secret(provider["secretKey"]) == "test"
    assert rpc.unwrap_rpc_secret(provider["accessKey"]) == "test"
    assert any(typ == "aws:dynamodb/table:Table" for typ, _, _ in recorded)


def test_aws_program_has_no_local_endpoints(tmp_path: Path) -> None:
    service, _ = make_service(tmp_path, target="aws")
    prep = prepared(service)
    recorded = run_program(service.branch_program(), config_values(prep.config), prep.stack)
    provider = next(inputs for typ, _, inputs in recorded if typ == "pulumi:providers:aws")
    assert "endpoints" not in provider and "accessKey" not in provider
    assert service.local.starts == 0


def test_shared_program_builds_network_and_dms_service_roles(tmp_path: Path) -> None:
    service, _ = make_service(tmp_path)
    prep = prepare_shared(service.settings)
    recorded = run_program(service.shared_program(), config_values(prep.config), "shared")
    types = [typ for typ, _, _ in recorded]
    assert "aws:ec2/vpc:Vpc" in types and "db-recipes:dms:ServiceRoles" in types
    roles = {inputs.get("name") for typ, _, inputs in recorded if typ == "aws:iam/role:Role"}
    assert roles == {"dms-vpc-role", "dms-cloudwatch-logs-role"}
    # Branch stacks on the shared network may rotate secrets or run DMS: Secrets Manager is reachable.
    endpoints = [inputs for typ, _, inputs in recorded if typ == "aws:ec2/vpcEndpoint:VpcEndpoint"]
    assert [e["serviceName"] for e in endpoints] == ["com.amazonaws.us-east-1.secretsmanager"]


def test_rotation_and_dms_on_the_shared_network_add_no_endpoints(tmp_path: Path) -> None:
    service, _ = make_service(tmp_path, "shared_network = true\n")
    prep = prepared(service, recipes="secret-rotation,dms-migration")
    shared = {"network": {"vpc_id": "vpc-shared", "private_subnet_ids": ["subnet-a", "subnet-b"],
                          "app_security_group_id": "sg-app"}}
    recorded = run_program(service.branch_program(), config_values(prep.config), prep.stack, outputs=shared)
    types = [typ for typ, _, _ in recorded]
    assert "aws:lambda/function:Function" in types and "aws:dms/replicationConfig:ReplicationConfig" in types
    assert "aws:ec2/vpcEndpoint:VpcEndpoint" not in types


def test_branch_stack_reads_the_network_from_the_shared_stack(tmp_path: Path) -> None:
    service, _ = make_service(tmp_path, "shared_network = true\n")
    prep = prepared(service, recipes="aurora-serverless")
    shared = {"network": {"vpc_id": "vpc-shared", "private_subnet_ids": ["subnet-a", "subnet-b"],
                          "app_security_group_id": "sg-app"}}
    recorded = run_program(service.branch_program(), config_values(prep.config), prep.stack, outputs=shared)
    types = [typ for typ, _, _ in recorded]
    assert "aws:ec2/vpc:Vpc" not in types and "aws:ec2/subnet:Subnet" not in types
    ref = next(inputs for typ, _, inputs in recorded if typ == "pulumi:pulumi:StackReference")
    assert ref["name"] == "organization/db-recipes/shared"
    subnet_group = next(inputs for typ, _, inputs in recorded if typ == "aws:rds/subnetGroup:SubnetGroup")
    assert subnet_group["subnetIds"] == ["subnet-a", "subnet-b"]


def test_network_args_reject_shared_stack_with_vpc_id() -> None:
    from components.network import NetworkArgs

    with pytest.raises(ValueError, match="shared_stack and vpc_id"):
        NetworkArgs(shared_stack="organization/db-recipes/shared", vpc_id="vpc-1", subnet_ids=("a", "b"))
    with pytest.raises(ValueError, match="shared_stack"):
        NetworkArgs(shared_stack="not a stack")


# ----------------------------------------------------------------- progress from real engine events


def _events(data: list[dict[str, Any]]) -> list[auto.EngineEvent]:
    return [auto.EngineEvent.from_json(item) for item in data]


def test_plain_progress_prints_one_line_per_resource_operation() -> None:
    import io

    stream = io.StringIO()
    ticks = iter(range(100))
    renderer = progress.PlainRenderer(stream, progress.Tracker(clock=lambda: float(next(ticks))))
    data = resource_events("s", [("same", "pulumi:providers:aws", "aws"), ("create", "aws:ec2/vpc:Vpc", "vpc"),
                                 ("update", "aws:rds/cluster:Cluster", "db")], fail="db")
    data.insert(1, {"sequence": 99, "timestamp": 1, "policyEvent": {
        "message": "storage must be encrypted", "color": "never", "policyName": "rds-storage-encrypted",
        "policyPackName": "db-recipes-guard", "policyPackVersion": "1", "policyPackVersionTag": "1",
        "enforcementLevel": "mandatory", "resourceUrn": "urn:pulumi:s::db-recipes::aws:rds/cluster:Cluster::db"}})
    data.insert(1, {"sequence": 98, "timestamp": 1, "diagnosticEvent": {
        "message": "progress...", "color": "never", "severity": "info", "ephemeral": True}})
    for event in _events(data):
        renderer.on_event(event)
    lines = stream.getvalue().splitlines()
    assert lines[0] == "policy mandatory [db-recipes-guard/rds-storage-encrypted] on db: storage must be encrypted"
    assert lines[1].startswith("+ created aws:ec2/vpc:Vpc vpc (")
    assert lines[2] == "error (db): creating db: InvalidParameterValue: bad value"
    assert lines[3] == "! failed to update aws:rds/cluster:Cluster db"
    assert lines[4].startswith("= 1 create, 1 same in ")
    assert len(lines) == 5  # no line for the unchanged provider or the ephemeral diagnostic
    tracker = renderer.tracker
    assert [op.name for op in tracker.failed] == ["db"] and not tracker.in_flight
    assert len(tracker.violations) == 1 and tracker.errors()[0].urn.endswith("::db")


def test_live_progress_tracks_in_flight_and_prints_diagnostics() -> None:
    import io

    from rich.console import Console

    stream = io.StringIO()
    console = Console(file=stream, force_terminal=True, width=120, color_system=None)
    data = resource_events("s", [("create", "aws:ec2/vpc:Vpc", "vpc"), ("create", "aws:rds/cluster:Cluster", "db")],
                           fail="db")
    with progress.LiveRenderer(console, "up s") as live:
        events = _events(data)
        live.on_event(events[1])  # vpc starts
        assert list(live.tracker.in_flight) == ["urn:pulumi:s::db-recipes::aws:ec2/vpc:Vpc::vpc"]
        for event in events[2:]:
            live.on_event(event)
    text = stream.getvalue()
    assert "error (db): creating db: InvalidParameterValue: bad value" in text
    assert "failed to create aws:rds/cluster:Cluster db" in text
    assert "up s: 1 done, 1 failed" in text


@pytest.mark.parametrize(("env", "tty", "live"), [({}, True, True), ({}, False, False), ({"CI": "true"}, True, False),
                                                  ({"NO_COLOR": "1"}, True, False)])
def test_live_display_only_on_a_terminal_outside_ci(env: dict, tty: bool, live: bool) -> None:
    class Stream:
        def isatty(self) -> bool:
            return tty

    assert progress.use_live(Stream(), env) is live


def test_the_display_appears_with_the_first_engine_event(monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    for key in ("CI", "NO_COLOR", "TERM"):
        monkeypatch.delenv(key, raising=False)
    events = _events(resource_events("s", [("create", "aws:ec2/vpc:Vpc", "vpc")]))
    asked: list[str] = []

    def title() -> str:
        asked.append("title")
        return "up s"

    plain = progress.Display(io.StringIO(), title)
    live = progress.Display(Terminal(), title)
    for shown in (plain, live):
        assert shown.stream.getvalue() == ""  # nothing drawn before the engine runs (the prompt comes first)
        for event in events:
            shown.on_event(event)
        shown.close()
    assert plain.stream.getvalue().splitlines()[0].startswith("+ created aws:ec2/vpc:Vpc vpc (")
    assert "up s: 1 done, 0 failed" in live.stream.getvalue()
    assert asked == ["title"]  # asked once, by the live panel only


def test_config_setting_is_relative_to_the_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "stacks").mkdir()
    (tmp_path / "stacks" / "dev.yaml").write_text("config:\n  db-recipes:recipes: dynamodb-autoscaling\n",
                                                  encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    service, _ = make_service(tmp_path, 'config = "stacks/dev.yaml"\n')
    prep = prepare(service.settings, branch="feature/x")
    assert prep.recipes == ("dynamodb-autoscaling",)


# ----------------------------------------------------------------- the real pulumi.automation over a scripted CLI
#
# The `pulumi` binary is the scripted one of tests/scripted_pulumi.py.


@pytest.fixture
def scripted_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Any]:
    return install_scripted_cli(tmp_path, monkeypatch)


def test_real_automation_api_creates_configures_and_tags_in_the_stack_work_dir(tmp_path: Path,
                                                                                scripted_cli: Any) -> None:
    state_file, command = scripted_cli
    project = tmp_path / "project"
    project.mkdir()
    settings = load_settings(project, env={})
    service = envs.Environments(settings, Engine(settings, command=command), local=StubLocal(),
                                identity=lambda: ("dev@example.com", "abc123"), clock=lambda: NOW)
    prep = prepare(settings, branch="feature/x", recipes="dynamodb-autoscaling")
    stack = service.engine.stack(prep.stack, service.branch_program())
    service._sync_config(stack, prep.config)
    service._sync_tags(stack, prep)

    saved = json.loads(state_file.read_text(encoding="utf-8"))[prep.stack]
    assert saved["secrets_provider"] == "passphrase"
    assert saved["config"] == {"db-recipes:recipes": "dynamodb-autoscaling", "db-recipes:branch": "feature/x",
                               "db-recipes:ephemeral": "true", "aws:region": "us-east-1"}
    assert saved["tags"]["ephemeral"] == "true" and saved["tags"]["expires-at"] == "2026-11-30T12:00:00Z"
    calls = cli_log(state_file)
    work_dir = str(project.resolve() / ".dbenv" / "work" / prep.stack)
    init = next(c for c in calls if c["args"][:2] == ["stack", "init"])
    assert init["cwd"] == work_dir and init["args"][2] == prep.stack
    assert init["backend"] == (project.resolve() / ".dbenv" / "state").as_uri()
    assert init["passphrase_file"] == str(project.resolve() / ".dbenv" / "passphrase")
    assert (project / ".dbenv" / "work" / prep.stack / "Pulumi.yaml").is_file()


def test_real_automation_api_lists_masks_and_protects(tmp_path: Path, scripted_cli: Any) -> None:
    state_file, command = scripted_cli
    state_file.write_text(json.dumps({
        "old-1": {"tags": _tags("old", NOW - timedelta(hours=1)), "config": {}, "resources": 5,
                  "outputs": {"endpoint": "db.local", "password": "pw"}, "secret_outputs": ["password"]},
        "durable": {"tags": {"branch": "release"}, "config": {}, "resources": 2, "outputs": {},
                    "secret_outputs": []},
    }), encoding="utf-8")
    settings = load_settings(tmp_path, env={})
    service = envs.Environments(settings, Engine(settings, command=command), local=StubLocal(),
                                clock=lambda: NOW)
    infos = {info.stack: info for info in service.list()}
    assert infos["old-1"].expired and infos["old-1"].resource_count == 5 and infos["old-1"].branch == "old"
    assert not infos["durable"].ephemeral and infos["durable"].last_result is None
    assert service.outputs("old-1") == {"endpoint": "db.local", "password": "[secret]"}
    with pytest.raises(Refused, match="not tagged ephemeral"):
        service._destroy("durable", "release", force=False, on_event=None, wait=False)
    assert not service.down("feature/never").existed
    assert service.local.starts == 0
    commands = [" ".join(c["args"][:2]) for c in cli_log(state_file)]
    assert "destroy" not in " ".join(commands)
