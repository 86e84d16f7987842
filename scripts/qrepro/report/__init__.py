"""report stage of the workflow (rules/report*.smk)."""
