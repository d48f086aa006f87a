"""The policy pack program: the Pulumi CLI (and ``dbenv policy check``) runs this to serve the analyzer protocol.

It only builds the pack; the policies live in the ``db_guard`` package next to it, one module per service.
``PolicyPack`` starts a gRPC Analyzer server, prints its port and serves until the process is stopped.
"""

import gc
import os

from db_guard import PACK_DESCRIPTION, PACK_NAME, build_policies, fastpath
from pulumi_policy import EnforcementLevel, PolicyPack

# Each RPC allocates thousands of short-lived objects; the default threshold runs the cycle collector over
# the whole heap of imported modules again and again (as mypy does: python/mypy, mypy/build.py).
gc.set_threshold(200_000, 30, 30)
# Decode each resource once per RPC and offer it only to the policies of its type (fastpath.py).
# DB_GUARD_FASTPATH=off runs the SDK's own code paths instead: slower, the same verdicts (the tests compare them).
if os.environ.get("DB_GUARD_FASTPATH", "on") != "off":
    fastpath.install()

PolicyPack(
    name=PACK_NAME,
    policies=build_policies(),
    enforcement_level=EnforcementLevel.ADVISORY,
    description=PACK_DESCRIPTION,
    display_name="db-recipes guard",
    provider="aws",
    tags=["rds", "aurora", "dynamodb", "dms", "secretsmanager", "kms", "iam", "lambda", "encryption"],
)
