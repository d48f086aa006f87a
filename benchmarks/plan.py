"""Wall time of `dbenv plan --recipes all --json` as a fresh process: median of several runs.

Usage: python benchmarks/plan.py [RUNS]
Prints the figures; asserts nothing (speed goals are read, not tested).
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    dbenv = shutil.which("dbenv") or str(Path(sys.executable).parent / "dbenv")
    command = [dbenv, "plan", "--branch", "bench/plan", "--recipes", "all", "--json"]
    times = []
    resources = 0
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)
        times.append(time.perf_counter() - start)
        resources = len(json.loads(done.stdout)["resources"])
    print(f"dbenv plan --recipes all: {resources} resources")
    print(f"runs={runs} median={statistics.median(times):.2f}s min={min(times):.2f}s max={max(times):.2f}s")


if __name__ == "__main__":
    main()
