"""Bodies and answers of the HTTP API: pydantic models with extra="forbid"; the OpenAPI document comes from them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

_STRICT = ConfigDict(extra="forbid", populate_by_name=True)


class EnvironmentRequest(BaseModel):
    """PUT /v1/environments/{branch}: what `dbenv up` takes as flags."""

    model_config = _STRICT
    recipes: str | list[str] | None = Field(None, description="'all', a comma-separated list, or a list of "
                                            "recipe names (default: the service's `recipes` setting)")
    from_: str | None = Field(None, alias="from", max_length=250,
                              description="clone the databases of this environment (a branch, e.g. staging)")
    ttl: str | None = Field(None, max_length=40, description="lifetime before the reaper removes it: 90m, 72h, 3d")
    config: dict[str, Any] | None = Field(None, description="stack config, as in a Pulumi.<stack>.yaml "
                                          "(e.g. {\"aws:region\": \"eu-west-1\"})")


class PlanRequest(BaseModel):
    """POST /v1/plans: an offline plan (no engine, no cloud), priced and policy-checked."""

    model_config = _STRICT
    branch: str | None = Field(None, max_length=250)
    recipes: str | list[str] | None = None
    from_: str | None = Field(None, alias="from", max_length=250)
    config: dict[str, Any] | None = None


class Links(BaseModel):
    model_config = _STRICT
    self: str
    events: str | None = None
    page: str | None = None


class Job(BaseModel):
    model_config = _STRICT
    id: int
    kind: str
    branch: str | None
    stack: str | None
    state: str
    requested_by: str
    source: str
    inputs: dict[str, Any]
    outcome: dict[str, Any] | None
    outputs: dict[str, Any] | None
    error: str | None
    commit_sha: str | None
    worker: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    duration_seconds: float | None
    links: Links


class JobList(BaseModel):
    model_config = _STRICT
    items: list[Job]
    next_cursor: str | None


class Cost(BaseModel):
    model_config = _STRICT
    idle: float | None
    asleep: float | None
    active: float | None


class Environment(BaseModel):
    model_config = _STRICT
    branch: str
    stack: str
    recipes: list[str]
    status: str
    owner: str | None
    commit: str | None
    parent: str | None
    ephemeral: bool
    created_at: datetime | None
    expires_at: datetime | None
    expired: bool
    asleep: bool
    monthly_cost: Cost
    drift: str | None
    drift_checked_at: datetime | None
    outputs: dict[str, Any]
    pull_request: str | None = Field(None, description="owner/repo#number of the pull request that drives it")
    last_job: Job | None
    links: Links


class EnvironmentList(BaseModel):
    model_config = _STRICT
    items: list[Environment]
    next_cursor: str | None


class Event(BaseModel):
    model_config = _STRICT
    seq: int
    at: datetime
    kind: str
    line: str
    data: dict[str, Any]


class EventList(BaseModel):
    model_config = _STRICT
    job: int
    state: str
    items: list[Event]


class Plan(BaseModel):
    model_config = _STRICT
    stack: str
    recipes: list[str]
    resources: list[dict[str, Any]]
    cost: dict[str, Any]
    policy: dict[str, Any]


class Health(BaseModel):
    model_config = _STRICT
    status: str
    checks: dict[str, Any] = Field(default_factory=dict)


class Problem(BaseModel):
    """RFC 9457 problem details."""

    model_config = ConfigDict(extra="allow")
    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    field: str | None = None
