"""Every failure an operation reports, and the two groups both faces map them to.

``USAGE``: decided before anything was touched (bad input, a protection rule, a settings
mistake): the CLI exits 2, the service answers 4xx. ``FAILED``: the work itself failed (the
engine, AWS, a missing Pulumi CLI, a declined confirmation): the CLI exits 1, the job fails.
"""

from __future__ import annotations

from automation.local_aws import LocalAwsError
from automation.workspace import PulumiCliError, SettingsError


class BadInput(ValueError):
    """Bad branch, recipes, config, TTL or target: exit 2, nothing touched."""


class OverBudget(BadInput):
    """The idle estimate is over the budget: the message names the top drivers and --over-budget."""


class Refused(Exception):
    """A protection rule said no (protected branch, not ephemeral, dependants): exit 2, nothing touched."""


class OperationFailed(Exception):
    """The engine reported a failure: exit 1."""

    def __init__(self, message: str, *, stack: str, failed_resources: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.stack = stack
        self.failed_resources = failed_resources


class StackLocked(OperationFailed):
    """Another update holds the stack's lock."""


class NotFound(Exception):
    """No such stack."""


class SleepError(Exception):
    """AWS refused to stop or start a database, or could not be reached: exit 1."""


class Declined(Exception):
    """The confirmation said no: nothing was deployed (exit 1)."""


USAGE: tuple[type[BaseException], ...] = (BadInput, Refused, SettingsError)
FAILED: tuple[type[BaseException], ...] = (OperationFailed, NotFound, SleepError, Declined, PulumiCliError,
                                           LocalAwsError)
