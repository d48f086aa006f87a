"""The embedded local AWS endpoint: a moto server on 127.0.0.1 that ``--target local`` deploys to.

It runs as a detached process (``python -m moto.server``) so it outlives the
``dbenv`` command that started it; its pid, port and log live in
``.dbenv/local/``. The port is kept across restarts because a stack's AWS
provider stores the endpoint URL in its state and destroy reuses it.

moto keeps everything in memory: stopping the server forgets every local
resource (a later ``dbenv down`` still succeeds, as deleting something that
is already gone is not an error for the AWS provider).
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
HEALTH_PATH = "/moto-api/config"
PID_FILE = "moto.pid"
PORT_FILE = "moto.port"
LOG_FILE = "moto.log"
START_LOCK = "start.lock"
# Services the recipes call, by the AWS provider's endpoint key (ProviderEndpointArgs names,
# canonical keys only: setting an alias and its canonical key together is an error).
SERVICES: tuple[str, ...] = (
    "appautoscaling", "cloudwatch", "dms", "dynamodb", "ec2", "iam", "kms", "lambda", "logs",
    "rds", "rdsdata", "s3", "secretsmanager", "ssm", "sts",
)
ACCESS_KEY = "test"
SECRET_KEY = "test"


class LocalAwsError(RuntimeError):
    """The local server could not be started or stopped."""


class PortUnavailable(ValueError):
    """The asked-for port is taken (by another program, or the running server listens elsewhere): bad input."""


@dataclass(frozen=True)
class Status:
    running: bool
    endpoint: str | None
    pid: int | None
    stale_cleaned: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"running": self.running, "endpoint": self.endpoint, "pid": self.pid}


class LocalAws:
    """Start, stop and check the moto server whose files live in ``directory``."""

    def __init__(self, directory: Path, *, python: str = sys.executable) -> None:
        self.directory = directory
        self.python = python

    @property
    def pid_file(self) -> Path:
        return self.directory / PID_FILE

    @property
    def log_file(self) -> Path:
        return self.directory / LOG_FILE

    def status(self) -> Status:
        """Running means: the pid file names a live process and the endpoint answers. Else clean up."""
        record = self._read_pid_file()
        if record is None:
            return Status(False, None, None)
        pid, port = record
        endpoint = _endpoint(port)
        if _alive(pid) and healthy(endpoint):
            return Status(True, endpoint, pid)
        # The process is gone (or is not ours any more): a stale pid file from a crash or reboot.
        self.pid_file.unlink(missing_ok=True)
        return Status(False, None, None, stale_cleaned=True)

    def start(self, port: int | None = None, timeout: float = 30.0) -> Status:
        """Start the server unless it runs; wait until it answers. Returns the running status.

        An explicit ``port`` must be the running server's, or free (PortUnavailable otherwise,
        before anything is written).
        """
        if port is not None:
            if not 1 <= port <= 65535:
                raise PortUnavailable(f"--port: {port} is not a TCP port (1-65535)")
            current = self.status()
            if current.running:
                if current.endpoint != _endpoint(port):
                    raise PortUnavailable(f"--port: the local endpoint already runs at {current.endpoint} "
                                          f"(pid {current.pid}); `dbenv local stop` first to move it to port {port}")
                return current
            if not port_free(port):
                raise PortUnavailable(f"--port: port {port} on {HOST} is in use by another program: "
                                      "choose another port, or leave --port out")
        self.directory.mkdir(parents=True, exist_ok=True)
        # Parallel `dbenv up` runs must agree on one server: the first starts it, the others wait.
        with open(self.directory / START_LOCK, "a", encoding="utf-8") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                return self._start_locked(port, timeout)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _start_locked(self, port: int | None, timeout: float) -> Status:
        current = self.status()
        if current.running:
            return current
        if port is None:
            port = self._remembered_port() or free_port()
            if not port_free(port):
                port = free_port()
        elif not port_free(port):
            raise PortUnavailable(f"--port: port {port} on {HOST} is in use by another program: "
                                  "choose another port, or leave --port out")
        with open(self.log_file, "ab") as log:
            process = subprocess.Popen(
                [self.python, "-m", "moto.server", "-H", HOST, "-p", str(port)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,  # survives the dbenv process and its terminal's Ctrl-C
                close_fds=True,
            )
        self._write_pid_file(process.pid, port)
        endpoint = _endpoint(port)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                self.pid_file.unlink(missing_ok=True)
                raise LocalAwsError(f"the moto server exited with code {process.returncode}; see {self.log_file}")
            if healthy(endpoint):
                return Status(True, endpoint, process.pid)
            time.sleep(0.2)
        _terminate(process.pid)
        self.pid_file.unlink(missing_ok=True)
        raise LocalAwsError(f"the moto server did not answer on {endpoint} within {timeout:.0f}s; see {self.log_file}")

    def ensure_running(self) -> str:
        """The endpoint URL, starting the server first if needed."""
        status = self.start()
        assert status.endpoint is not None
        return status.endpoint

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop the server; True if one was running. A stale pid file is just removed."""
        record = self._read_pid_file()
        if record is None:
            return False
        pid, _ = record
        was_running = _alive(pid)
        if was_running:
            _terminate(pid, timeout)
        self.pid_file.unlink(missing_ok=True)
        return was_running

    def _read_pid_file(self) -> tuple[int, int] | None:
        try:
            data = json.loads(self.pid_file.read_text(encoding="utf-8"))
            return int(data["pid"]), int(data["port"])
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError, OSError):
            self.pid_file.unlink(missing_ok=True)  # unreadable: treat as stale
            return None

    def _write_pid_file(self, pid: int, port: int) -> None:
        self.pid_file.write_text(json.dumps({"pid": pid, "port": port}), encoding="utf-8")
        (self.directory / PORT_FILE).write_text(str(port), encoding="utf-8")

    def _remembered_port(self) -> int | None:
        try:
            return int((self.directory / PORT_FILE).read_text(encoding="utf-8").strip())
        except (OSError, ValueError):
            return None


def _endpoint(port: int) -> str:
    return f"http://{HOST}:{port}"


def healthy(endpoint: str, timeout: float = 1.0) -> bool:
    """True if a moto server answers its management API at ``endpoint``."""
    try:
        with urllib.request.urlopen(endpoint + HEALTH_PATH, timeout=timeout) as response:  # noqa: S310 - local URL
            return 200 <= response.status < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def port_free(port: int) -> bool:
    """Whether a server could listen on ``port`` now. SO_REUSEADDR as the moto server binds: connections
    of a stopped server still in TIME_WAIT do not make its port busy, a program listening there does."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
        return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, but not ours; the health check decides
    return _is_moto(pid)


def _is_moto(pid: int) -> bool:
    """A recycled pid must not be mistaken for our server (only checkable where /proc exists)."""
    cmdline = Path(f"/proc/{pid}/cmdline")
    if not cmdline.exists():
        return True
    try:
        text = cmdline.read_bytes().replace(b"\x00", b" ").decode("utf-8", "replace")
    except OSError:
        return False
    return "moto.server" in text and "<defunct>" not in text and _not_zombie(pid)


def _not_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _terminate(pid: int, timeout: float = 10.0) -> None:
    """SIGTERM the server's process group, then SIGKILL what is left after ``timeout``."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            _reap(pid)
            return
        time.sleep(0.1)
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    _reap(pid)


def _reap(pid: int) -> None:
    """Collect the exit status when the server is our own child (tests, a long-lived process)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def aws_env(endpoint: str, region: str) -> dict[str, str]:
    """Environment for boto3/CLI tools to talk to the local server."""
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
    }
