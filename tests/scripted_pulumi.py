"""The scripted `pulumi` binary: the real pulumi.automation package runs it as it runs the CLI.

Below the seam: the real LocalWorkspace/Stack code builds the command lines, runs the `pulumi`
binary and parses its JSON. The binary here is a small script that keeps stacks in a JSON file
and answers the few commands these operations use, in the real CLI's output formats; every call
is appended to ``<state>.log``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

FAKE_CLI = r'''#!PYTHON
import json, os, sys
state_path = os.environ["FAKE_PULUMI_STATE"]
args = [a for a in sys.argv[1:] if a != "--non-interactive"]
with open(state_path + ".log", "a") as log:
    log.write(json.dumps({"args": args, "cwd": os.getcwd(),
                          "backend": os.environ.get("PULUMI_BACKEND_URL"),
                          "passphrase_file": os.environ.get("PULUMI_CONFIG_PASSPHRASE_FILE")}) + "\n")
if args == ["version"]:
    print("v3.272.0"); sys.exit(0)
state = json.load(open(state_path)) if os.path.exists(state_path) else {}
def save():
    json.dump(state, open(state_path, "w"))
def opt(name):
    return args[args.index(name) + 1] if name in args else None
stack = opt("--stack")
def need():
    if stack not in state:
        sys.stderr.write(f"error: no stack named '{stack}' found\n"); sys.exit(255)
    return state[stack]
if args[:2] == ["stack", "select"]:
    need(); sys.exit(0)
if args[:2] == ["stack", "init"]:
    state[args[2]] = {"tags": {}, "config": {}, "outputs": {}, "secret_outputs": [], "resources": 0,
                      "secrets_provider": opt("--secrets-provider")}
    save(); sys.exit(0)
if args[:3] == ["stack", "ls", "--json"]:
    print(json.dumps([{"name": n, "current": False, "lastUpdate": "2026-11-27T10:05:00.000Z",
                       "updateInProgress": False, "resourceCount": s["resources"]} for n, s in sorted(state.items())]))
    sys.exit(0)
if args[:3] == ["stack", "tag", "ls"]:
    print(json.dumps(need()["tags"])); sys.exit(0)
if args[:3] == ["stack", "tag", "set"]:
    need()["tags"][args[3]] = args[4]; save(); sys.exit(0)
if args[:2] == ["config", "set-all"]:
    s = need()
    for i, a in enumerate(args):
        if a == "--plaintext":
            key, _, value = args[i + 1].partition("=")
            s["config"][key] = value
    save(); sys.exit(0)
if args[:2] == ["config", "rm-all"]:
    s = need()
    for key in args[4:]:
        s["config"].pop(key, None)
    save(); sys.exit(0)
if args[0] == "config" and "--json" in args:
    print(json.dumps({k: {"value": v, "secret": False} for k, v in need()["config"].items()})); sys.exit(0)
if args[:2] == ["stack", "output"]:
    s = need()
    shown = "--show-secrets" in args
    print(json.dumps({k: (v if shown or k not in s["secret_outputs"] else "[secret]")
                      for k, v in s["outputs"].items()})); sys.exit(0)
if args[:2] == ["stack", "history"]:
    print(json.dumps(need().get("history", [])[:1])); sys.exit(0)
def stream(events):
    # The engine's event stream: JSON events over gRPC to the address given in --event-log.
    import grpc
    from pulumi.runtime.proto import events_pb2, events_pb2_grpc
    address = opt("--event-log")[len("tcp://"):]
    with grpc.insecure_channel(address) as channel:
        events_pb2_grpc.EventsStub(channel).StreamEvents(
            iter([events_pb2.EventRequest(event=json.dumps(e)) for e in events]))
def steps(op, names):
    out = []
    for name in names:
        meta = {"op": op, "urn": f"urn:pulumi:{stack}::db-recipes::aws:dynamodb/table:Table::{name}",
                "type": "aws:dynamodb/table:Table", "provider": ""}
        out.append({"sequence": len(out), "timestamp": 1, "resourcePreEvent": {"metadata": meta}})
        out.append({"sequence": len(out), "timestamp": 2, "resOutputsEvent": {"metadata": meta}})
    out.append({"sequence": len(out), "timestamp": 3, "summaryEvent": {
        "maybeCorrupt": False, "durationSeconds": 1, "resourceChanges": {op: len(names)}, "PolicyPacks": {}}})
    return out
def record(kind, changes):
    s = need()
    s.setdefault("history", []).insert(0, {
        "kind": kind, "startTime": "2026-11-27T10:00:00.000Z", "endTime": "2026-11-27T10:01:00.000Z",
        "message": opt("--message") or "", "environment": {}, "config": {}, "result": "succeeded",
        "version": len(s["history"]) + 1, "resourceChanges": changes})
if args[0] in ("up", "preview", "destroy"):
    s = need()
    if s.get("locked"):
        sys.stderr.write(f"error: the stack is currently locked by 1 lock(s). Either wait for the other "
                         f"process(es) to end or delete the lock file with `pulumi cancel`.\n"
                         f"  file:///state/.pulumi/locks/organization/db-recipes/{stack}/1.json: created by "
                         "ci@runner (pid 7) at 2026-11-27T10:00:00Z\n")
        sys.exit(255)
    if args[0] == "up" and s.get("fail"):
        print(f"  aws:dynamodb:Table (orders):\n    error: creating orders: {s['fail']}")
        sys.stderr.write("error: update failed\n"); sys.exit(255)
    if args[0] == "destroy":
        stream(steps("delete", ["orders"]))
        record("destroy", {"delete": 1})
        s["resources"], s["outputs"] = 0, {}
    else:
        stream(steps("create", ["orders"]))
        if args[0] == "up":
            record("update", {"create": 1})
            s["resources"] = 2
            s["outputs"] = {"dynamodb-autoscaling": {"table_name": "orders"}, "token": "t0ps3cret"}
            if stack == "shared":
                s["outputs"] = {"network": {"vpc_id": "vpc-1"}}
            s["secret_outputs"] = ["token"]
            s["policy_packs"] = [args[i + 1] for i, a in enumerate(args) if a == "--policy-pack"]
    s["last_args"] = args
    save(); sys.exit(0)
if args[:2] == ["stack", "rm"]:
    state.pop(args[-1], None); save(); sys.exit(0)
sys.stderr.write("error: the scripted CLI does not know: " + " ".join(args) + "\n"); sys.exit(2)
'''


def install_scripted_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Any]:
    """The scripted `pulumi` in tmp_path, its state file, and a real PulumiCommand for it."""
    import sys

    from automation import workspace

    root = tmp_path / "pulumi-root"
    (root / "bin").mkdir(parents=True)
    binary = root / "bin" / "pulumi"
    binary.write_text(FAKE_CLI.replace("#!PYTHON", "#!" + sys.executable), encoding="utf-8")
    binary.chmod(0o755)
    state = tmp_path / "cli-state.json"
    monkeypatch.setenv("FAKE_PULUMI_STATE", str(state))
    return state, workspace.pulumi_command(binary)


def cli_log(state: Path) -> list[dict[str, Any]]:
    """Every call the scripted CLI answered (none yet: an empty list)."""
    log = Path(str(state) + ".log")
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]


def scripted_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A project on the aws target with a file backend whose `pulumi` is the scripted one: (project, CLI state)."""
    from automation import workspace

    state, command = install_scripted_cli(tmp_path, monkeypatch)
    project = tmp_path / "project"
    project.mkdir()
    (project / "dbenv.toml").write_text(f'target = "aws"\nbackend = "{(tmp_path / "state").as_uri()}"\n'
                                        'recipes = "dynamodb-autoscaling"\nshared_network = false\n',
                                        encoding="utf-8")
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "test-only")
    for key in ("DBENV_TARGET", "DBENV_BUDGET", "PULUMI_BACKEND_URL", "CI", "NO_COLOR"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setattr(workspace, "find_pulumi", lambda *a, **k: Path(command.command))
    return project, state
