"""`dbenv` commands, one module per group; `automation.cli` assembles them."""
