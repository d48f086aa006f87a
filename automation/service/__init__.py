"""The self-hosted dbenv service and the pieces it is built from."""
