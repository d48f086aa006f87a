"""An offline review of a prepared stack: its planned resources, their monthly cost, the policy verdicts.

The same three calls as `dbenv plan --json`, `dbenv cost --json` and `dbenv policy check --json`
(no engine, no cloud); the service answers POST /v1/plans with it and a pull request's comment
shows it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def review(prepared: Any, project_dir: Path | None = None) -> dict[str, Any]:
    from automation.planning import cost
    from automation.planning import plan as planning
    from automation.planning import policy_check as checking

    usage_file = (project_dir / cost.USAGE_FILE) if project_dir else None
    usage = cost.read_usage(usage_file) if usage_file is not None and usage_file.is_file() else cost.Usage()
    rules = checking.read_policy_config(checking.DEFAULT_POLICY_CONFIG)
    planned: dict[str, Any] = {}

    def load() -> Any:
        planned["plan"] = planning.build_plan(prepared.config, stack=prepared.stack)
        return checking.target_from_plan(planned["plan"])

    report = checking.check(load, project=planning.PROJECT, stack=prepared.stack, stack_config=prepared.config,
                            policy_config=rules, policy_config_source=str(checking.DEFAULT_POLICY_CONFIG))
    estimate = cost.estimate_stack(prepared.config, prepared.stack, usage)
    return {"stack": prepared.stack, "recipes": list(prepared.recipes),
            "resources": planned["plan"].to_json()["resources"],
            "cost": {**estimate.to_json(), "monthly": {"idle": round(estimate.total("idle"), 2),
                                                       "asleep": round(estimate.total("asleep"), 2),
                                                       "active": round(estimate.total("usage"), 2)}},
            "policy": {**report.to_json(), "levels": dict(report.levels)}}
