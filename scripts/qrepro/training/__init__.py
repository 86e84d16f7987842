"""Training stage (rules/train.smk, and the memory probe of rules/probe.smk)."""
