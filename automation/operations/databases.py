"""Reaching a branch's databases from its stack's outputs, and its schema against its parent's.

Both faces use it: `dbenv db connect/query/diff` and the service's pull-request comment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from automation.operations.errors import BadInput, OperationFailed
from automation.workspace import Settings


def stack_context(settings: Settings, branch: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The branch stack's outputs, and the boto3 client arguments that reach its AWS APIs."""
    from automation import local_aws
    from automation.operations.lifecycle import environments_for
    from components import naming

    stack = naming.stack_name(branch)
    values = environments_for(settings, read_only=True).outputs(stack, show_secrets=False)
    client_args: dict[str, Any] = {"region_name": settings.region}
    if settings.target == "local":
        status = local_aws.LocalAws(settings.local_dir).status()
        if not status.running:
            raise OperationFailed("the local AWS endpoint is not running: `dbenv local start`, then `dbenv up`",
                                  stack=stack)
        client_args.update(endpoint_url=status.endpoint, aws_access_key_id=local_aws.ACCESS_KEY,
                           aws_secret_access_key=local_aws.SECRET_KEY)
    return values, client_args


def stack_access(settings: Settings, branch: str, *, recipe: str | None = None, user: str | None = None,
                 ca_bundle: Path | None = None) -> Any:
    """How to reach a stack's database from its outputs (Data API, IAM token or the admin secret)."""
    import boto3

    from automation.runbooks import access, db

    values, client_args = stack_context(settings, branch)
    try:
        return access.from_outputs(values, recipe=recipe, region=settings.region,
                                   client=lambda service: boto3.client(service, **client_args),
                                   user=user, ca_bundle=ca_bundle, label=branch)
    except db.DbError as err:
        raise BadInput(str(err)) from None


def schema_diff(settings: Settings, branch: str, parent: str, *, recipe: str | None = None) -> Any:
    """The branch database's schema against the parent's (runbooks.schema_diff over reachable databases)."""
    from automation.runbooks import schema_diff as diffing

    return diffing.diff(stack_access(settings, branch, recipe=recipe), stack_access(settings, parent, recipe=recipe))


def schema_diff_text(settings: Settings, parent: str) -> str:
    """The diff's summary for a report; what kept it from being made when it could not be."""
    from automation.operations import errors
    from automation.runbooks import schema_diff as diffing

    try:
        return schema_diff(settings, settings.branch, parent).summary()
    except (*errors.USAGE, *errors.FAILED, diffing.SchemaDiffError, diffing.Unreachable) as err:
        return f"not available: {' '.join(str(err).split())[:400]}"
