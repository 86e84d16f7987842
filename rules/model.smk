# The base model both variants fine-tune: pretrained here (default), from the hub, from disk, or random.


rule base_model:
    output:
        model=directory(f"{RESULTS}/base_model"),
        log_history=f"{RESULTS}/train/base/pretrain_log_history.csv",
    input:
        unpack(base_model_inputs),
    params:
        source=config["model"]["source"],
        init=config["model"]["init"],
        hub_id=config["model"]["hub_id"],
        revision=config["model"]["revision"],
        local_path=config["model"]["local_path"],
        load_dtype=config["model"]["load_dtype"],
        architecture=config["model"]["architecture"],
        pretrain=config["model"]["pretrain"],
        precision=config["training"]["precision"],
        seed=config["seed"],
        # Checkpoints live outside the declared output, so a killed job resumes instead of restarting.
        work_dir=f"{RESULTS}/checkpoints/base",
    threads: 2
    resources:
        mem_mb=8000,
        gpu=config["gpus"],
        runtime=240,
    log:
        f"{LOGS}/base_model.log",
    benchmark:
        f"{BENCH}/base_model.tsv"
    conda:
        CONDA_ENV
    script:
        "../scripts/build_base_model.py"
