"""Rule finetune: train one variant ({variant} = full | qlora) with the transformers Trainer."""
from qrepro.runlog import log_to
from qrepro.training.job import launch
from qrepro.training.spec import FinetuneJob, JobInputs, JobOutputs, JobParams

# Plain parameters, only the fields the job uses: they cross to accelerate's processes as JSON.
smk = snakemake  # noqa: F821
job = FinetuneJob(
    variant=smk.wildcards.variant,
    threads=smk.threads,
    scheduler_cores=smk.resources.scheduler_cores,
    log=smk.log[0],
    input=JobInputs(base_model=smk.input.base_model, tokenizer=smk.input.tokenizer, tokenized=smk.input.tokenized),
    output=JobOutputs(weights=smk.output.weights, log_history=smk.output.log_history,
                      hyperparameters=smk.output.hyperparameters),
    params=JobParams(hp=smk.params.hp, shared=smk.params.shared, seed=smk.params.seed, timing=smk.params.timing,
                     bootstrap=smk.params.bootstrap,
                     max_length=smk.params.max_length, metrics=smk.params.metrics,
                     checkpoint_dir=smk.params.checkpoint_dir),
)

with log_to(job.log):
    launch(job)
