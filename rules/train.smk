# Fine-tuning, one job per variant ({variant} = full | qlora), same data and base model; with several training
# seeds, one per variant and seed ({seed}), each into its own run folder (RUN, rules/common.smk).


wildcard_constraints:
    variant="|".join(VARIANTS),
    seed=r"\d+",


rule finetune:
    output:
        weights=f"{RUN}/models/{{variant}}/model.safetensors",
        model_config=f"{RUN}/models/{{variant}}/config.json",
        log_history=f"{RUN}/train/{{variant}}/log_history.csv",
        hyperparameters=f"{RUN}/train/{{variant}}/hyperparameters.json",
        metrics=CATALOGUE.outputs("finetune", "{variant}", root=RUN),
    input:
        base_model=rules.base_model.output.model,
        tokenizer=rules.tokenizer.output.tokenizer,
        tokenized=rules.tokenize.output.tokenized,
    params:
        hp=variant_hp,
        shared=shared_training(),
        seed=training_seed,
        timing=config["timing"],
        bootstrap=config["evaluation"]["bootstrap"],
        max_length=config["data"]["max_length"],
        metrics=declared_metrics,
        # Outside the declared outputs: Snakemake's incomplete-output cleanup never deletes them.
        checkpoint_dir=lambda wc: f"{run_dir(getattr(wc, 'seed', None))}/checkpoints/{wc.variant}",
    # timed: holds every core, so nothing runs beside it (torch uses them all)
    threads: TIMED_JOB_THREADS
    resources:
        scheduler_cores=SCHEDULER_CORES,
        mem_mb=8000,
        gpu=config["gpus"] * config["training"]["num_processes"],
        runtime=240,
    wildcard_constraints:
        variant="full",
    log:
        f"{LOGS}/finetune_{{variant}}{SEED_TAG}.log",
    benchmark:
        f"{BENCH}/finetune_{{variant}}{SEED_TAG}.tsv"
    conda:
        CONDA_ENV
    script:
        "../scripts/finetune.py"


# QLoRA saves an adapter instead of a whole model: the same job with other declared files.
use rule finetune as finetune_qlora with:
    output:
        weights=f"{RUN}/models/{{variant}}/adapter_model.safetensors",
        model_config=f"{RUN}/models/{{variant}}/adapter_config.json",
        log_history=f"{RUN}/train/{{variant}}/log_history.csv",
        hyperparameters=f"{RUN}/train/{{variant}}/hyperparameters.json",
        metrics=CATALOGUE.outputs("finetune", "{variant}", root=RUN),
    wildcard_constraints:
        variant="qlora",
