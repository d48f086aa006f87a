"""The db-recipes CrossGuard policies, one module per AWS service, assembled by ``registry``.

The package imports nothing of the project: the Pulumi CLI runs it in the pack's own virtualenv
(``requirements.txt``), and ``dbenv policy check`` starts it as a separate process and talks to it over the
analyzer protocol. ``inputs`` reads properties as AWS reads the API call; ``rules`` turns checks into policies.
"""

from .registry import PACK_DESCRIPTION, PACK_NAME, build_policies, rules

__all__ = ["PACK_DESCRIPTION", "PACK_NAME", "build_policies", "rules"]
