"""What a branch costs a month, idle and asleep, at list prices: `--recipes all` and the application set.

Usage: python benchmarks/branch_cost.py [--region us-east-1] [--branch bench/cost]
Prints the figures and the per-recipe breakdown from `dbenv cost`'s estimator; asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from automation.planning import cost  # noqa: E402
from components import naming  # noqa: E402

SELECTIONS = {
    "all": "all",
    "application": "aurora-serverless,iam-auth,data-api,dynamodb-autoscaling,secret-rotation",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--branch", default="bench/cost")
    args = parser.parse_args()
    stack = naming.stack_name(args.branch)
    for label, recipes in SELECTIONS.items():
        config = {"aws:region": args.region, "db-recipes:recipes": recipes, "db-recipes:ephemeral": True,
                  "db-recipes:branch": args.branch}
        estimate = cost.estimate_stack(config, stack)
        print(f"== {label} ({recipes}) on a branch, {args.region}, prices as of {estimate.prices_as_of}")
        print(f"idle   {cost.money(estimate.total('idle')):>12}/month")
        print(f"asleep {cost.money(estimate.total('asleep')):>12}/month")
        for name, figures in estimate.recipes().items():
            print(f"  {name:<22} idle {cost.money(figures['idle']):>10}   asleep {cost.money(figures['asleep']):>10}")
        for name, part, value in estimate.drivers("idle", 5):
            print(f"  driver {cost.money(value):>10}  {name}: {part}")
        if estimate.not_priced:
            print(f"  not priced: {len(estimate.not_priced)}")
        print()


if __name__ == "__main__":
    main()
