"""Rule write_reference: this GPU run's results, with their provenance, into reference/<gpu>-<profile>/."""
from qrepro.report.reference import write_reference
from qrepro.runlog import git_commit, log_to

p, inp = snakemake.params, snakemake.input  # noqa: F821
with log_to(snakemake.log[0]):  # noqa: F821
    write_reference(snakemake.output[0], list(inp.metrics), inp.manifest, p.benchmarks_dir,  # noqa: F821
                    {"command": p.command, "git_commit": git_commit(), "config_digest": p.config_digest, "run": p.run})
