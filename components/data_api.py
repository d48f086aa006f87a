"""Placeholder: being written."""
from dataclasses import dataclass

import pulumi


@dataclass(frozen=True)
class DataApiArgs:
    pass


class DataApiAccess(pulumi.ComponentResource):
    pass
