# `snakemake memory`: the paper's memory claim measured at the configured architecture's real scale,
# with random weights (no hub, no pretraining): a few optimizer steps of each variant, peak memory recorded.


rule probe_base:
    output:
        model=directory(f"{RESULTS}/probe/base_model"),
    input:
        unpack(structure_inputs),
    params:
        architecture=config["model"]["architecture"],
        model_location=config["model"]["hub_id"] if config["model"]["source"] == "hub" else config["model"]["local_path"],
        revision=config["model"]["revision"],
        weights_dtype=config["probe"]["weights_dtype"],
        seed=config["seed"],
    resources:
        mem_mb=12000,
    log:
        f"{LOGS}/probe_base.log",
    benchmark:
        f"{BENCH}/probe_base.tsv"
    conda:
        CONDA_ENV
    script:
        "../scripts/build_probe_base.py"


# The probe trains at probe.precision on whatever device there is, CPU included at any scale: the training-device
# checks (training.precision, allow_cpu) do not concern it (DEVICE_CHECK_EXEMPT, rules/common.smk).


rule memory_probe:
    output:
        CATALOGUE.outputs("memory_probe", "probe_{variant}"),
    input:
        model=rules.probe_base.output.model,
    params:
        hp=variant_hp,
        precision=config["probe"]["precision"],
        weights_dtype=config["probe"]["weights_dtype"],
        steps=config["probe"]["steps"],
        warmup_steps=config["probe"]["warmup_steps"],
        seq_len=config["probe"]["seq_len"] or config["data"]["max_length"],
        seed=config["seed"],
        timing=config["timing"],
        metrics=declared_metrics,
        work_dir=lambda wc: f"{RESULTS}/probe/work_{wc.variant}",
    # timed: holds every core, so nothing runs beside it
    threads: TIMED_JOB_THREADS
    resources:
        scheduler_cores=SCHEDULER_CORES,
        mem_mb=20000,
        gpu=config["gpus"],
        runtime=60,
    log:
        f"{LOGS}/memory_probe_{{variant}}.log",
    benchmark:
        f"{BENCH}/memory_probe_{{variant}}.tsv"
    conda:
        CONDA_ENV
    script:
        "../scripts/memory_probe.py"
