"""model stage of the workflow (rules/model*.smk)."""
