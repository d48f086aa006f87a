"""Time and peak memory of `dbenv` answering each hostile file of the bad-input corpus (tests/bad_input.py).

Usage: python benchmarks/hostile_input.py
Each file goes to the command that reads its kind (YAML: `plan --config`, JSON: `policy check --from`,
TOML: `plan` with the file as dbenv.toml, SQL: `up --seed`), each in a fresh process. Prints, per file, the
exit code, the time of the answer (from the command's start, imports excluded), the process's wall
time and its peak memory (max RSS, and its growth over the imports); then the worst file. The goal
is an answer in under 2 s and under 200 MB; this prints the figures and asserts nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

GOAL_SECONDS, GOAL_MB = 2.0, 200.0

# The child reads its peak from VmHWM: getrusage's ru_maxrss would carry the parent's peak over exec.
_CHILD = """
import json, sys, time

def peak_mb():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024

from automation import cli
base = peak_mb()
start = time.perf_counter()
try:
    code = cli.app(sys.argv[1:], standalone_mode=False) or 0
except SystemExit as exit:
    code = exit.code
seconds = time.perf_counter() - start
peak = peak_mb()
print(json.dumps({"code": code, "seconds": seconds, "peak_mb": peak, "growth_mb": peak - base}), file=sys.__stdout__)
"""


def _command(kind: str, path: Path) -> list[str]:
    if kind == "yaml":
        return ["plan", "--branch", "bench/x", "--config", str(path)]
    if kind == "json":
        return ["policy", "check", "--from", str(path)]
    if kind == "sql":
        return ["up", "--branch", "bench/x", "--yes", "--recipes", "aurora-serverless", "--seed", str(path)]
    return ["plan", "--branch", "bench/x"]


def run_one(kind: str, path: Path, project: Path) -> dict:
    (project / "dbenv.toml").write_bytes(path.read_bytes() if kind == "toml" else b"")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DBENV_", "PULUMI_"))}
    env["PYTHONPATH"] = str(ROOT)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _CHILD, *_command(kind, path)], cwd=project, env=env,
                          capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    lines = [line for line in done.stdout.splitlines() if line.startswith("{\"code\"")]
    figures = json.loads(lines[-1]) if lines else {"code": done.returncode, "seconds": float("nan"),
                                                   "peak_mb": float("nan"), "growth_mb": float("nan")}
    message = (done.stderr.strip().splitlines() or ["-"])[-1]
    return {**figures, "wall": wall, "message": message}


def main() -> None:
    from tests import bad_input

    with tempfile.TemporaryDirectory(prefix="dbenv-hostile-") as scratch:
        files = bad_input.write_files(Path(scratch) / "corpus")
        project = Path(scratch) / "project"
        project.mkdir()
        rows = []
        print(f"{'file':<22} {'bytes':>9} {'exit':>4} {'answer':>8} {'wall':>6} {'peak':>8} {'growth':>8}  message")
        for name, (kind, _) in bad_input.FILES.items():
            row = {"name": name, "bytes": files[name].stat().st_size, **run_one(kind, files[name], project)}
            rows.append(row)
            print(f"{name:<22} {row['bytes']:>9} {row['code']!s:>4} {row['seconds']:>7.3f}s {row['wall']:>5.2f}s "
                  f"{row['peak_mb']:>6.0f}MB {row['growth_mb']:>6.1f}MB  {row['message'][:90]}")
    slowest = max(rows, key=lambda r: r["seconds"])
    hungriest = max(rows, key=lambda r: r["growth_mb"])
    print(f"worst time:   {slowest['name']} ({slowest['bytes']} bytes): answered in {slowest['seconds']:.3f}s "
          f"(process wall {slowest['wall']:.2f}s); goal < {GOAL_SECONDS:.0f}s")
    print(f"worst memory: {hungriest['name']} ({hungriest['bytes']} bytes): peak {hungriest['peak_mb']:.0f} MB "
          f"(+{hungriest['growth_mb']:.1f} MB over the imports); goal < {GOAL_MB:.0f} MB")
    over = [r["name"] for r in rows if r["seconds"] >= GOAL_SECONDS or r["peak_mb"] >= GOAL_MB]
    print("over a goal: " + (", ".join(over) if over else "none"))
    exits = sorted({str(r["code"]) for r in rows})
    print(f"exit codes seen: {', '.join(exits)} (2 = refused as bad input)")


if __name__ == "__main__":
    main()
