"""training stage of the workflow (rules/training*.smk)."""
