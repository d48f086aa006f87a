"""Wall time of `dbenv policy check --recipes all` (plan + pack start + analysis), median of several runs.

Usage: python benchmarks/policy_check.py [--runs N]

Prints the median (and min/max) of complete CLI runs, each a fresh process as
in CI, then where one run's time goes, measured in-process: the pack's
start-up (process start to printed port, overlapping the plan), the plan, and
the protocol exchange (Configure ... AnalyzeStack). Goal: under 2 seconds.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

GOAL_SECONDS = 2.0
COMMAND = [sys.executable, "-m", "automation.cli", "policy", "check", "--branch", "bench", "--recipes", "all"]


def cli_runs(runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        result = subprocess.run(COMMAND, cwd=ROOT, capture_output=True, text=True, check=False)
        times.append(time.perf_counter() - start)
        if result.returncode not in (0, 1):
            raise SystemExit(f"dbenv policy check failed ({result.returncode}): {result.stderr.strip()}")
    return times


def breakdown() -> dict[str, float]:
    """One check with its phases timed (a warm process: no interpreter start, imports already paid)."""
    from automation import plan as planning
    from automation import policy_check

    config = planning.merge_config({}, recipes="all", branch="bench", ephemeral=True)
    phases: dict[str, float] = {}
    start = time.perf_counter()
    with policy_check.running_pack(project=planning.PROJECT, stack="bench-0", stack_config=config) as pack:
        launched = time.perf_counter()
        plan = planning.build_plan(config, stack="bench-0")
        planned = time.perf_counter()
        pack.connect()
        connected = time.perf_counter()
        policy_check.analyze(pack, policy_check.target_from_plan(plan),
                             policy_check.read_policy_config(policy_check.DEFAULT_POLICY_CONFIG))
        analyzed = time.perf_counter()
    phases["launch pack process + engine service"] = launched - start
    phases["plan (overlaps the pack's start-up)"] = planned - launched
    phases["wait for the pack's port after the plan"] = connected - planned
    phases["protocol: configure, analyze, analyze stack"] = analyzed - connected
    phases["stop the pack"] = time.perf_counter() - analyzed
    return phases


def pack_startup(runs: int = 3) -> float:
    """Median time from starting the pack process to its printed port, alone."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        process = subprocess.Popen([sys.executable, "-u", "-m", "pulumi.policy", "127.0.0.1:0", "."],
                                   cwd=ROOT / "policies", stdout=subprocess.PIPE)
        assert process.stdout is not None
        process.stdout.readline()
        times.append(time.perf_counter() - start)
        process.terminate()
        process.wait()
        process.stdout.close()
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="complete CLI runs to take the median of")
    args = parser.parse_args()
    cli_runs(1)  # warm the file cache and the Lambda archive cache; not counted
    times = cli_runs(args.runs)
    median = statistics.median(times)
    print(f"dbenv policy check --recipes all: median {median:.2f}s over {len(times)} runs "
          f"(min {min(times):.2f}s, max {max(times):.2f}s; goal < {GOAL_SECONDS:.0f}s: "
          f"{'met' if median < GOAL_SECONDS else 'NOT met'})")
    print(f"pack start-up alone (process start -> port): {pack_startup():.2f}s")
    print("one run, in-process:")
    for phase, seconds in breakdown().items():
        print(f"  {phase:<46} {seconds:6.3f}s")


if __name__ == "__main__":
    main()
