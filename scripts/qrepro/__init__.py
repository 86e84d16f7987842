"""Shared library for the QLoRA-vs-full-fine-tuning reproduction.

Subpackages mirror the workflow's stages (rules/): data, model, training, evaluation, report; shared modules sit at
the top. The rule scripts in ``scripts/`` stay thin and call into these. Nothing here imports torch at module import
time unless the module is about models or training, so the catalogue and the config checks can run while Snakemake
parses the workflow.
"""
from pathlib import Path

SCRIPTS_DIR = Path(__file__).resolve().parent.parent  # scripts/: the rule scripts and this package
