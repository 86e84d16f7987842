"""Shared library for the QLoRA-vs-full-fine-tuning reproduction.

One module per concern; the rule scripts in ``scripts/`` stay thin and call into these.
Nothing here imports torch at module import time unless the module is about models or training,
so the config checks can run while Snakemake parses the workflow.
"""
