"""``edgekit.compress``: the end-to-end pipeline (recipe, stages, report)."""
