"""A real `dbenv serve` (and `dbenv worker`s) as processes on loopback, over a real PostgreSQL.

The database is either the embedded one (pgserver, started by `dbenv serve` itself under the
project's .dbenv/service/) or a fresh database on the machine's PostgreSQL (127.0.0.1:5432). The
only stand-in is the `pulumi` binary: the scripted CLI of tests/test_environments.py, found on PATH,
so the real pulumi.automation code runs it and reads its real event stream.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
MACHINE_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
BRANCH = "feature/svc"
STACK_OF: dict[str, str] = {}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def machine_database() -> str:
    """A fresh database on the machine's PostgreSQL; fails (not skips) when the server is down."""
    import psycopg

    name = f"dbenv_svc_{uuid.uuid4().hex[:10]}"
    try:
        with psycopg.connect(MACHINE_PG, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f"CREATE DATABASE {name}")
    except psycopg.OperationalError as err:
        raise AssertionError(f"PostgreSQL on 127.0.0.1:5432 is not reachable ({err}); the service tests need it: "
                             "start it with `pg_ctlcluster <version> main start`") from None
    return f"postgresql://postgres@127.0.0.1:5432/{name}"


def drop_machine_database(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    with contextlib.suppress(Exception), psycopg.connect(MACHINE_PG, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@dataclass
class Project:
    """A dbenv project whose engine is the scripted `pulumi` (state in a JSON file)."""

    root: Path
    bin_dir: Path
    cli_state: Path
    env: dict[str, str] = field(default_factory=dict)

    def state(self) -> dict[str, Any]:
        return json.loads(self.cli_state.read_text(encoding="utf-8")) if self.cli_state.exists() else {}

    def set_state(self, stack: str, **values: Any) -> None:
        state = self.state()
        state.setdefault(stack, {"tags": {}, "config": {}, "outputs": {}, "secret_outputs": [], "resources": 0})
        state[stack].update(values)
        self.cli_state.write_text(json.dumps(state), encoding="utf-8")

    def cli_calls(self) -> list[dict[str, Any]]:
        log = Path(str(self.cli_state) + ".log")
        if not log.exists():
            return []
        return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]


# The scripted CLI, made safe for many engine processes at once (one per running job) and able to
# run long: a stack's "delay" keeps `up`/`destroy` busy holding the stack's lock the way a real
# update does (a SIGKILLed worker leaves it held); SIGINT ends it like Pulumi's "update canceled";
# `cancel` clears the lock as `pulumi cancel` does.
_MERGING_SAVE = """import copy, fcntl
state = json.load(open(state_path)) if os.path.exists(state_path) else {}
original = copy.deepcopy(state)
def save():
    global original
    with open(state_path + ".lock", "a") as lk:
        fcntl.flock(lk, fcntl.LOCK_EX)
        current = json.load(open(state_path)) if os.path.exists(state_path) else {}
        for key in set(original) | set(state):
            if state.get(key) != original.get(key):
                if key in state:
                    current[key] = state[key]
                else:
                    current.pop(key, None)
        tmp = state_path + f".{os.getpid()}"
        json.dump(current, open(tmp, "w"))
        os.replace(tmp, state_path)
        original = copy.deepcopy(state)
"""
_LONG_RUN = """if args[0] == "cancel":
    s = need(); s.pop("locked", None); save(); sys.exit(0)
if args[0] in ("up", "destroy") and state.get(stack, {}).get("delay") and not state[stack].get("locked"):
    import time
    s = need(); s["locked"] = True; s["runs"] = s.get("runs", 0) + 1; save()
    with open(state_path + ".running", "a") as f:
        f.write(json.dumps({"stack": stack, "op": args[0], "pid": os.getpid(), "at": time.time()}) + "\\n")
    try:
        time.sleep(float(s["delay"]))
    except KeyboardInterrupt:
        s.pop("locked", None); save()
        sys.stderr.write("error: update canceled\\n"); sys.exit(255)
    s.pop("locked", None); s["delay_done"] = s.get("delay_done", 0) + 1; save()
"""


def scripted_cli() -> str:
    from tests.scripted_pulumi import FAKE_CLI

    load = ('state = json.load(open(state_path)) if os.path.exists(state_path) else {}\n'
            'def save():\n    json.dump(state, open(state_path, "w"))\n')
    assert load in FAKE_CLI and 'if args[0] in ("up", "preview", "destroy"):' in FAKE_CLI
    text = FAKE_CLI.replace(load, _MERGING_SAVE)
    return text.replace('if args[0] in ("up", "preview", "destroy"):',
                        _LONG_RUN + 'if args[0] in ("up", "preview", "destroy"):', 1)


_MOTO: dict[str, Any] = {}


def local_aws_endpoint() -> str:
    """A moto server on loopback for every AWS API call a service process makes (sleep and wake read RDS):
    the projects here deploy to --target aws through the scripted engine, and no call may leave the machine."""
    if "url" not in _MOTO:
        import logging

        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # a line per request otherwise
        port = free_port()
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        _MOTO.update(server=server, url=f"http://127.0.0.1:{port}")
    return _MOTO["url"]


def make_project(tmp: Path, *, with_pulumi: bool = True, toml_extra: str = "") -> Project:
    root = tmp / "project"
    root.mkdir(parents=True)
    (root / "dbenv.toml").write_text(f'target = "aws"\nbackend = "{(tmp / "state").as_uri()}"\n'
                                     'recipes = "dynamodb-autoscaling"\nshared_network = false\n' + toml_extra,
                                     encoding="utf-8")
    (root / "policies").mkdir()
    (root / "policies" / "PulumiPolicy.yaml").write_text("runtime: python\n", encoding="utf-8")
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    if with_pulumi:
        binary = bin_dir / "pulumi"
        binary.write_text(scripted_cli().replace("#!PYTHON", "#!" + sys.executable), encoding="utf-8")
        binary.chmod(0o755)
    state = tmp / "cli-state.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DBENV_", "PULUMI_"))}
    env.update({"AWS_ENDPOINT_URL": local_aws_endpoint(), "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"})
    env.update({"FAKE_PULUMI_STATE": str(state), "PULUMI_CONFIG_PASSPHRASE": "test-only",
                "PATH": f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin", "HOME": str(tmp / "home"),
                "PYTHONPATH": str(ROOT), "NO_COLOR": "1"})
    (tmp / "home").mkdir()
    return Project(root=root, bin_dir=bin_dir, cli_state=state, env=env)


def dbenv(project: Project, *args: str, timeout: float = 120, env: dict[str, str] | None = None
          ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "automation.cli", *args], cwd=project.root, capture_output=True,
                          text=True, timeout=timeout, env={**project.env, **(env or {})}, stdin=subprocess.DEVNULL)


def make_token(project: Project, name: str, scope: str, database_url: str | None) -> str:
    args = ["service", "token", "create", "--name", name, "--scope", scope]
    if database_url:
        args += ["--database-url", database_url]
    done = dbenv(project, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


class Process:
    """A `dbenv serve` or `dbenv worker` child process, its log in a file."""

    def __init__(self, project: Project, args: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.log_path = log
        self.log = log.open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "automation.cli", *args], cwd=project.root,
                                     env={**project.env, **(env or {})}, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def kill(self) -> None:
        """SIGKILL: no clean-up at all (its children die with its session)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()
        return self.proc.returncode


class Service:
    def __init__(self, project: Project, tmp: Path, *, workers: int = 2, database_url: str | None = None,
                 env: dict[str, str] | None = None, host: str = "127.0.0.1") -> None:
        self.project, self.tmp, self.database_url = project, tmp, database_url
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        args = ["serve", "--host", host, "--port", str(self.port), "--workers", str(workers)]
        if database_url:
            args += ["--database-url", database_url]
        self.process = Process(project, args, tmp / f"serve-{self.port}.log", env)

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.proc.poll() is not None:
                raise AssertionError(f"dbenv serve exited {self.process.proc.returncode}:\n{self.process.output()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.base + "/healthz", timeout=2).status_code == 200:
                    return
            time.sleep(0.1)
        raise AssertionError(f"dbenv serve did not answer in {timeout}s:\n{self.process.output()}")

    def client(self, token: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.base, headers=headers, timeout=30)

    def stop(self) -> int:
        return self.process.stop()


class Deployment:
    """A project, a running service, its tokens and (on the machine's database) its worker processes."""

    def __init__(self, tmp: Path, mode: str, workers: int = 2) -> None:
        self.tmp, self.mode = tmp, mode
        self.project: Project = make_project(tmp)
        self.url = machine_database() if mode == "machine" else None
        self.write = make_token(self.project, "writer", "write", self.url)
        self.read = make_token(self.project, "reader", "read", self.url)
        self.workers: list[Process] = []
        # On the shared database the API serves and two `dbenv worker` processes do the work.
        self.service = Service(self.project, tmp, workers=0 if mode == "machine" else workers,
                               database_url=self.url, env={"DBENV_HEARTBEAT_TIMEOUT": "4"})
        if mode == "machine":
            for i in range(workers):
                self.add_worker(f"w{i}")
        self.service.wait_ready()
        self.api = self.service.client(self.write)
        self.reader = self.service.client(self.read)

    def add_worker(self, name: str) -> Process:
        worker = Process(self.project, ["worker", "--database-url", self.url or "", "--concurrency", "1"],
                         self.tmp / f"worker-{name}.log", env={"DBENV_HEARTBEAT_TIMEOUT": "4"})
        self.workers.append(worker)
        return worker

    def close(self) -> None:
        self.api.close()
        self.reader.close()
        self.service.stop()
        for worker in self.workers:
            worker.stop()
        if self.url:
            drop_machine_database(self.url)


def wait_for(condition: Any, what: str, seen: Any = None, timeout: float = 60) -> Any:
    """Poll ``condition`` until it returns something true; fail naming ``what`` (and ``seen()``) otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what}: not seen in {timeout}s" + (f"; seen:\n{seen()}" if seen else ""))


def wait_job(client: httpx.Client, job_id: int, states: tuple[str, ...] = ("succeeded", "failed", "cancelled",
                                                                             "lost", "superseded"),
             timeout: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["state"] in states:
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not reach {states} in {timeout}s: {job}")


@contextlib.contextmanager
def running(project: Project, tmp: Path, **kwargs: Any) -> Iterator[Service]:
    service = Service(project, tmp, **kwargs)
    try:
        service.wait_ready()
        yield service
    finally:
        service.stop()
