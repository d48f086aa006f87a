"""Placeholder: being written."""
from dataclasses import dataclass

import pulumi


@dataclass(frozen=True)
class DmsMigrationArgs:
    pass


class DmsMigration(pulumi.ComponentResource):
    pass
class DmsSource: pass
