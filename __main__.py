"""The stack program: read this stack's config and build the selected recipes."""

from components import recipes

recipes.export(recipes.build(recipes.read_stack_config()))
