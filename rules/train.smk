# Fine-tuning, one job per variant ({variant} = full | qlora), same data and base model.


wildcard_constraints:
    variant="|".join(VARIANTS),


rule finetune:
    output:
        weights=f"{RESULTS}/models/{{variant}}/model.safetensors",
        model_config=f"{RESULTS}/models/{{variant}}/config.json",
        log_history=f"{RESULTS}/train/{{variant}}/log_history.csv",
        hyperparameters=f"{RESULTS}/train/{{variant}}/hyperparameters.json",
        metrics=CATALOGUE.outputs("finetune", "{variant}"),
    input:
        base_model=rules.base_model.output.model,
        tokenizer=rules.tokenizer.output.tokenizer,
        tokenized=rules.tokenize.output.tokenized,
    params:
        hp=variant_hp,
        shared=shared_training(),
        seed=config["seed"],
        timing=config["timing"],
        bootstrap=config["evaluation"]["bootstrap"],
        max_length=config["data"]["max_length"],
        metrics=declared_metrics,
        # Outside the declared outputs: Snakemake's incomplete-output cleanup never deletes them.
        checkpoint_dir=lambda wc: f"{RESULTS}/checkpoints/{wc.variant}",
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
        f"{LOGS}/finetune_{{variant}}.log",
    benchmark:
        f"{BENCH}/finetune_{{variant}}.tsv"
    conda:
        CONDA_ENV
    script:
        "../scripts/finetune.py"


# QLoRA saves an adapter instead of a whole model: the same job with other declared files.
use rule finetune as finetune_qlora with:
    output:
        weights=f"{RESULTS}/models/{{variant}}/adapter_model.safetensors",
        model_config=f"{RESULTS}/models/{{variant}}/adapter_config.json",
        log_history=f"{RESULTS}/train/{{variant}}/log_history.csv",
        hyperparameters=f"{RESULTS}/train/{{variant}}/hyperparameters.json",
        metrics=CATALOGUE.outputs("finetune", "{variant}"),
    wildcard_constraints:
        variant="qlora",
