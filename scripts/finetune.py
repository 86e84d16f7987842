"""Rule finetune: train one variant ({variant} = full | qlora) with the transformers Trainer."""
from qrepro.runlog import log_to
from qrepro.training.job import launch

with log_to(snakemake.log[0]):  # noqa: F821
    launch(snakemake)  # noqa: F821
