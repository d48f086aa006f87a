"""Placeholder: being written."""
from dataclasses import dataclass

import pulumi


@dataclass(frozen=True)
class DynamoDbAutoscalingArgs:
    pass


class DynamoDbAutoscaling(pulumi.ComponentResource):
    pass
