"""Evaluation stage (rules/evaluate.smk): the measurements of Tables 1-11 and the derived comparisons."""
