"""data stage of the workflow (rules/data*.smk)."""
