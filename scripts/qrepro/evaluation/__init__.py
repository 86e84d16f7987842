"""evaluation stage of the workflow (rules/evaluation*.smk)."""
