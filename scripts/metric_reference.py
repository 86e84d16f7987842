"""Rule docs: docs/metrics.md, the metric reference, generated from the catalogue."""
from pathlib import Path

from qrepro import catalogue
from qrepro.runlog import log_to

with log_to(snakemake.log[0]):  # noqa: F821
    Path(snakemake.output.reference).write_text(catalogue.markdown_reference(catalogue.load(snakemake.input.catalogue)))  # noqa: F821
