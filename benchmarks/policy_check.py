"""`dbenv policy check`: the recipes' time, the scale figures, and the ratio against checkov.

Usage: python benchmarks/policy_check.py [--runs N] [--scale 1000,2000,4000] [--checkov PATH]

Prints, each measured as CI runs it (a fresh process per run):
- `dbenv policy check --recipes all`: median/min/max of N runs, then where one run's time goes;
- `dbenv policy check --from` on resource files of 1,000 / 2,000 / 4,000 resources (copies of the
  recipes' plan): wall time, the per-resource slope between the smallest and largest size (goal: a fixed
  cost plus under 1 ms per resource), and peak memory of the CLI and of the pack process;
- when checkov is installed (on PATH, or --checkov): checkov over an equivalent Terraform stack (the same
  plan written as main.tf.json, pulumi-aws types mapped to their aws_* resources), cold, side by side with
  the offline check, paired run by run, and the median ratio (goal: at most 0.4 of checkov's time).

Before measuring, the project's own modules are byte-compiled (``compileall``), as ``pip install`` does for
checkov's: under ``PYTHONDONTWRITEBYTECODE=1`` a source tree is otherwise compiled again by every run, which
measures the compiler rather than the check. Nothing else is kept between runs (no results are cached).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

GOAL_SECONDS = 2.0
GOAL_RATIO = 0.4
# The project's own packages, byte-compiled before measuring (checkov's are, by pip at install).
SOURCES = ("automation", "components", "policies", "__main__.py")
GOAL_MS_PER_RESOURCE = 1.0
CLI = [sys.executable, "-m", "automation.cli", "policy", "check"]
RECIPES = [*CLI, "--branch", "bench", "--recipes", "all"]


def timed(command: list[str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    return time.perf_counter() - start, result


def cli_runs(runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        seconds, result = timed(RECIPES)
        if result.returncode not in (0, 1):
            raise SystemExit(f"dbenv policy check failed ({result.returncode}): {result.stderr.strip()}")
        times.append(seconds)
    return times


def breakdown() -> dict[str, float]:
    """One check with its phases timed (a warm process: no interpreter start, imports already paid)."""
    from automation.planning import plan as planning
    from automation.planning import policy_check

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


def recipes_plan() -> dict[str, Any]:
    from automation.planning import plan as planning

    config = planning.merge_config({}, recipes="all", branch="bench", ephemeral=True)
    return planning.build_plan(config, stack="bench-0").to_json()


def scaled(plan: dict[str, Any], count: int) -> dict[str, Any]:
    """``count`` resources: numbered copies of the plan's resources, urns, parents and dependencies renamed."""
    base = plan["resources"]
    resources = []
    copy = 0
    while len(resources) < count:
        prefix = f"c{copy}-"
        for r in base[: count - len(resources)]:
            text = json.dumps(r)
            for other in base:  # keep references inside one copy
                text = text.replace(f"::{other['name']}\"", f"::{prefix}{other['name']}\"")
            item = json.loads(text)
            item["name"] = prefix + r["name"]
            resources.append(item)
        copy += 1
    return {"project": plan["project"], "stack": plan["stack"], "resources": resources}


def _rss_peak_kb(pid: int) -> int:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    match = re.search(r"VmHWM:\s+(\d+) kB", text)
    return int(match.group(1)) if match else 0


def check_file(path: Path) -> tuple[float, int, int, str]:
    """Wall time, peak RSS of the CLI and of the pack (kB) and the summary line of one `--from` check."""
    start = time.perf_counter()
    process = subprocess.Popen([*CLI, "--from", str(path)], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    peaks = {"cli": 0, "pack": 0}

    def watch() -> None:
        while process.poll() is None:
            peaks["cli"] = max(peaks["cli"], _rss_peak_kb(process.pid))
            for child in _children(process.pid):
                peaks["pack"] = max(peaks["pack"], _rss_peak_kb(child))
            time.sleep(0.02)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    out, err = process.communicate()
    seconds = time.perf_counter() - start
    watcher.join()
    if process.returncode not in (0, 1):
        raise SystemExit(f"dbenv policy check --from {path} failed ({process.returncode}): {err.strip()}")
    return seconds, peaks["cli"], peaks["pack"], out.strip().splitlines()[-1]


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


# ----------------------------------------------------------------------------- checkov

# pulumi-aws type -> Terraform resource type, for the resources the recipes create.
TERRAFORM_TYPES = {
    "aws:rds/instance:Instance": "aws_db_instance", "aws:rds/cluster:Cluster": "aws_rds_cluster",
    "aws:rds/clusterInstance:ClusterInstance": "aws_rds_cluster_instance",
    "aws:rds/snapshot:Snapshot": "aws_db_snapshot", "aws:rds/snapshotCopy:SnapshotCopy": "aws_db_snapshot_copy",
    "aws:rds/subnetGroup:SubnetGroup": "aws_db_subnet_group", "aws:rds/proxy:Proxy": "aws_db_proxy",
    "aws:rds/proxyDefaultTargetGroup:ProxyDefaultTargetGroup": "aws_db_proxy_default_target_group",
    "aws:rds/proxyTarget:ProxyTarget": "aws_db_proxy_target",
    "aws:dynamodb/table:Table": "aws_dynamodb_table", "aws:appautoscaling/target:Target": "aws_appautoscaling_target",
    "aws:appautoscaling/policy:Policy": "aws_appautoscaling_policy", "aws:kms/key:Key": "aws_kms_key",
    "aws:kms/alias:Alias": "aws_kms_alias", "aws:secretsmanager/secret:Secret": "aws_secretsmanager_secret",
    "aws:secretsmanager/secretVersion:SecretVersion": "aws_secretsmanager_secret_version",
    "aws:secretsmanager/secretRotation:SecretRotation": "aws_secretsmanager_secret_rotation",
    "aws:dms/replicationInstance:ReplicationInstance": "aws_dms_replication_instance",
    "aws:dms/endpoint:Endpoint": "aws_dms_endpoint", "aws:dms/replicationTask:ReplicationTask":
    "aws_dms_replication_task", "aws:dms/replicationSubnetGroup:ReplicationSubnetGroup":
    "aws_dms_replication_subnet_group", "aws:iam/role:Role": "aws_iam_role", "aws:iam/policy:Policy":
    "aws_iam_policy", "aws:iam/rolePolicy:RolePolicy": "aws_iam_role_policy",
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": "aws_iam_role_policy_attachment",
    "aws:lambda/function:Function": "aws_lambda_function", "aws:lambda/permission:Permission": "aws_lambda_permission",
    "aws:ec2/securityGroup:SecurityGroup": "aws_security_group", "aws:ec2/vpc:Vpc": "aws_vpc",
    "aws:ec2/subnet:Subnet": "aws_subnet", "aws:ec2/routeTable:RouteTable": "aws_route_table",
    "aws:ec2/routeTableAssociation:RouteTableAssociation": "aws_route_table_association",
    "aws:ec2/vpcEndpoint:VpcEndpoint": "aws_vpc_endpoint",
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": "aws_vpc_security_group_ingress_rule",
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": "aws_vpc_security_group_egress_rule",
}


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _terraform_value(value: Any) -> Any:
    if isinstance(value, dict):
        return {_snake(k): _terraform_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_terraform_value(v) for v in value]
    return value if isinstance(value, (str, int, float, bool)) or value is None else str(value)


def terraform_stack(plan: dict[str, Any], directory: Path) -> int:
    """The plan as main.tf.json; returns how many resources it holds."""
    resources: dict[str, dict[str, Any]] = {}
    for r in plan["resources"]:
        kind = TERRAFORM_TYPES.get(r["type"])
        if kind is None:
            continue
        name = re.sub(r"[^A-Za-z0-9_]", "_", r["name"])
        resources.setdefault(kind, {})[name] = _terraform_value(r["inputs"])
    (directory / "main.tf.json").write_text(json.dumps({"resource": resources}), encoding="utf-8")
    return sum(len(v) for v in resources.values())


def checkov_comparison(checkov: str, plan: dict[str, Any], runs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        count = terraform_stack(plan, Path(tmp))
        command = [checkov, "-d", tmp, "--framework", "terraform", "--quiet", "--compact", "-o", "json",
                   "--skip-download"]
        ours, theirs = [], []
        for _ in range(runs):  # alternate, cold processes, side by side in one run
            seconds, result = timed(command)
            if result.returncode not in (0, 1):
                print(f"checkov failed ({result.returncode}): {result.stderr.strip()[:300]}")
                return
            theirs.append(seconds)
            ours.append(timed(RECIPES)[0])
    mine, other = statistics.median(ours), statistics.median(theirs)
    ratio = statistics.median(a / b for a, b in zip(ours, theirs, strict=True))
    print(f"checkov {checkov_version(checkov)} on the same stack as Terraform ({count} resources): median "
          f"{other:.2f}s; dbenv policy check --recipes all: {mine:.2f}s; median of {runs} paired ratios "
          f"{ratio:.2f} (goal <= {GOAL_RATIO:.2f}: {'met' if ratio <= GOAL_RATIO else 'NOT met'})")


def checkov_version(checkov: str) -> str:
    result = subprocess.run([checkov, "--version"], capture_output=True, text=True, check=False)
    return result.stdout.strip() or "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="complete CLI runs to take the median of")
    parser.add_argument("--scale", default="1000,2000,4000", help="resource counts for the --from figures")
    parser.add_argument("--checkov", default=os.environ.get("CHECKOV") or shutil.which("checkov"),
                        help="the checkov executable (default: checkov on PATH)")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} CPUs, load average {_load()} at the start")
    byte_compile()
    cli_runs(1)  # warm the file cache and the Lambda archive cache; not counted
    times = cli_runs(args.runs)
    median = statistics.median(times)
    print(f"dbenv policy check --recipes all: median {median:.2f}s over {len(times)} runs "
          f"(min {min(times):.2f}s, max {max(times):.2f}s; goal < {GOAL_SECONDS:.0f}s: "
          f"{'met' if median < GOAL_SECONDS else 'NOT met'})")
    print("one run, in-process:")
    for phase, seconds in breakdown().items():
        print(f"  {phase:<46} {seconds:6.3f}s")
    plan = recipes_plan()
    sizes = sorted(int(n) for n in args.scale.split(","))
    figures = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            path = Path(tmp) / f"resources-{size}.json"
            path.write_text(json.dumps(scaled(plan, size)), encoding="utf-8")
            seconds, cli_kb, pack_kb, summary = check_file(path)
            figures.append((size, seconds))
            verdict = "CANCELLED" if "CANCELLED" in summary else summary.split(";")[0]
            print(f"dbenv policy check --from {size} resources: {seconds:.2f}s, peak memory CLI "
                  f"{cli_kb / 1024:.0f} MiB, pack {pack_kb / 1024:.0f} MiB ({verdict})")
    if len(figures) >= 2:
        (n0, t0), (n1, t1) = figures[0], figures[-1]
        slope = (t1 - t0) / (n1 - n0) * 1000
        print(f"per resource: {slope:.2f} ms (from {n0} to {n1}); fixed cost about {t0 - slope * n0 / 1000:.2f}s "
              f"(goal < {GOAL_MS_PER_RESOURCE:g} ms: {'met' if slope < GOAL_MS_PER_RESOURCE else 'NOT met'})")
    if args.checkov:
        checkov_comparison(args.checkov, plan, args.runs)
    else:
        print("checkov: not installed (optional: pip install checkov, or --checkov PATH); no ratio printed")
    print(f"machine: load average {_load()} at the end (timings on a busy machine are slower)")


def byte_compile() -> None:
    """Compile the project's modules to ``__pycache__`` once (what an install does), even when the
    environment says not to write bytecode: every run after this reads it, none writes it."""
    for name in SOURCES:
        path = ROOT / name
        command = [sys.executable, "-m", "compileall", "-q", str(path)]
        subprocess.run(command, cwd=ROOT, check=True, env={**os.environ, "PYTHONDONTWRITEBYTECODE": ""})


def _load() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg()) + " (1 / 5 / 15 min)"


if __name__ == "__main__":
    main()
