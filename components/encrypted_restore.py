"""Placeholder: being written."""
from dataclasses import dataclass

import pulumi


@dataclass(frozen=True)
class EncryptExistingArgs:
    pass


class EncryptedRestore(pulumi.ComponentResource):
    pass
class DemoMySqlSource: pass
