"""Placeholder: being written."""
from dataclasses import dataclass

import pulumi


@dataclass(frozen=True)
class IamAuthArgs:
    pass


class IamDatabaseAuth(pulumi.ComponentResource):
    pass
