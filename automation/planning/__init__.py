"""Offline: the plan under Pulumi mocks, its cost from the price table, the policy check. No engine, no cloud."""
