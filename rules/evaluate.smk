# Measurements: every number of the paper's Tables 1-11, the paper's way and the correct way.


rule dataset_metrics:
    output:
        CATALOGUE.outputs("dataset_metrics"),
    input:
        stats=rules.tokenize.output.stats,
    params:
        metrics=declared_metrics,
    log:
        f"{LOGS}/dataset_metrics.log",
    conda:
        CONDA_ENV
    script:
        "../scripts/dataset_metrics.py"


rule structure_metrics:
    output:
        CATALOGUE.outputs("structure_metrics"),
    input:
        unpack(structure_inputs),
    params:
        architecture=config["model"]["architecture"],
        # read when architecture is null: the hub or local model's own config.json
        model_location=config["model"]["hub_id"] if config["model"]["source"] == "hub" else config["model"]["local_path"],
        revision=config["model"]["revision"],
        lora=config["training"]["qlora"]["lora"],
        double_quant=config["training"]["qlora"]["quantization"]["double_quant"],
        max_length=config["data"]["max_length"],
        metrics=declared_metrics,
        # where the values above come from, as each metric file names its inputs
        config_source="config",
    log:
        f"{LOGS}/structure_metrics.log",
    conda:
        CONDA_ENV
    script:
        "../scripts/structure_metrics.py"


use rule structure_metrics as paper_structure_metrics with:
    output:
        CATALOGUE.outputs("paper_structure_metrics"),
    input:
        "configs/paper.yaml",
    params:
        architecture=PAPER_PROFILE["model"]["architecture"],
        model_location=None,  # the paper profile declares its architecture: never read from the hub
        revision=None,
        lora=PAPER_PROFILE["training"]["qlora"]["lora"],
        double_quant=PAPER_PROFILE["training"]["qlora"]["quantization"]["double_quant"],
        max_length=PAPER_PROFILE["data"]["max_length"],
        metrics=declared_metrics,
        config_source=lambda wildcards, input: input[0],  # configs/paper.yaml
    log:
        f"{LOGS}/paper_structure_metrics.log",


rule model_size:
    output:
        CATALOGUE.outputs("model_size", "{variant}"),
    input:
        unpack(evaluated_model),
    params:
        quantization=quantization(),
        dtype_16bit="fp16",
        metrics=declared_metrics,
    threads: config["threads"]
    resources:
        mem_mb=8000,
        gpu=config["gpus"],
        runtime=240,
    log:
        f"{LOGS}/model_size_{{variant}}.log",
    benchmark:
        f"{BENCH}/model_size_{{variant}}.tsv"
    conda:
        CONDA_ENV
    script:
        "../scripts/measure_size.py"


rule flops:
    output:
        CATALOGUE.outputs("flops", "{variant}"),
    input:
        base_model=rules.base_model.output.model,
        tokenizer=rules.tokenizer.output.tokenizer,
        tokenized=rules.tokenize.output.tokenized,
        stats=rules.tokenize.output.stats,
    params:
        hp=variant_hp,
        precision=config["training"]["precision"],
        seed=config["seed"],
        metrics=declared_metrics,
    threads: config["threads"]
    resources:
        mem_mb=8000,
        gpu=config["gpus"],
        runtime=240,
    log:
        f"{LOGS}/flops_{{variant}}.log",
    benchmark:
        f"{BENCH}/flops_{{variant}}.tsv"
    conda:
        CONDA_ENV
    script:
        "../scripts/count_flops.py"


rule device_peak:
    output:
        CATALOGUE.outputs("device_peak"),
    input:
    params:
        precision=config["training"]["precision"],
        override=config["evaluation"]["peak_flops"],
        timing=config["timing"],
        metrics=declared_metrics,
    # timed: holds every core, so nothing runs beside it; measured with the training jobs' thread count
    threads: TIMED_JOB_THREADS
    resources:
        scheduler_cores=SCHEDULER_CORES,
        gpu=config["gpus"],
    log:
        f"{LOGS}/device_peak.log",
    benchmark:
        f"{BENCH}/device_peak.tsv"
    conda:
        CONDA_ENV
    script:
        "../scripts/device_peak.py"


rule mfu:
    output:
        CATALOGUE.outputs("mfu", "{variant}"),
    input:
        # the files the catalogue's mfu group reads (paper/metrics.yaml), by name
        unpack(lambda wildcards: CATALOGUE.reads("mfu", wildcards.variant)),
    params:
        metrics=declared_metrics,
        t4_peak_tflops=PAPER_NUMBERS["notebook_t4_peak_tflops"]["value"],
        level=config["evaluation"]["bootstrap"]["level"],
    log:
        f"{LOGS}/mfu_{{variant}}.log",
    conda:
        CONDA_ENV
    script:
        "../scripts/mfu.py"


rule perplexity:
    output:
        metrics=CATALOGUE.outputs("perplexity", "{model}"),
        # per test row (paper protocol) and per window (token level): NLL and tokens, what the intervals resample
        audit=f"{RESULTS}/eval/{{model}}/perplexity_audit.json",
    input:
        unpack(evaluated_model),
        tokenizer=rules.tokenizer.output.tokenizer,
        raw=rules.corpus.output.raw,
    params:
        model=lambda wildcards: wildcards.model,
        split="test",
        protocols=["paper", "token", "row"],  # a sweep point scores token-level only (rule sweep_perplexity)
        quantization=quantization(),
        dtype=config["evaluation"]["dtype"],
        max_length=config["data"]["max_length"],
        paper_samples=config["evaluation"]["paper_perplexity_samples"],
        stride=config["evaluation"]["perplexity_stride"],
        batch_size=config["evaluation"]["perplexity_batch_size"],
        bootstrap=config["evaluation"]["bootstrap"],
        init=config["model"]["init"],
        metrics=declared_metrics,
    # every core: not timed, but nothing else can start beside it on a small machine (the timed jobs wait for every
    # core), so one thread would leave the others idle
    threads: TIMED_JOB_THREADS
    resources:
        mem_mb=8000,
        gpu=config["gpus"],
        runtime=240,
    wildcard_constraints:
        # with several training seeds, the trained variants are evaluated per seed (rule perplexity_seed)
        model="|".join(m for m in PERPLEXITY_MODELS if m not in SEEDED_PERPLEXITY_MODELS),
    log:
        f"{LOGS}/perplexity_{{model}}.log",
    benchmark:
        f"{BENCH}/perplexity_{{model}}.tsv"
    conda:
        CONDA_ENV
    script:
        "../scripts/evaluate_perplexity.py"


if SEEDED:

    # Several training seeds: each seed's trained variants on the test split, into that seed's run folder.
    use rule perplexity as perplexity_seed with:
        output:
            metrics=CATALOGUE.outputs("perplexity", "{model}", root=RUN),
            audit=f"{RUN}/eval/{{model}}/perplexity_audit.json",
        wildcard_constraints:
            model="|".join(SEEDED_PERPLEXITY_MODELS),
        log:
            f"{LOGS}/perplexity_{{model}}{SEED_TAG}.log",
        benchmark:
            f"{BENCH}/perplexity_{{model}}{SEED_TAG}.tsv"

    # results/metrics/<variant>/: each of the variant's seeded metrics as the mean over the seeds' runs, with
    # their values, sd and interval (qrepro.seeds.seed_aggregate)
    rule aggregate_seeds:
        output:
            SEED_AGGREGATES,
        input:
            lambda wildcards: [file for path in SEED_AGGREGATES
                               for file in seed_run_files(path.format(variant=wildcards.variant))],
        params:
            seeds=SEEDS,
            # {aggregate: [the same file of each seed's run, in seed order]}
            seed_files=lambda wildcards, output: {path: seed_run_files(path) for path in output},
            level=config["evaluation"]["bootstrap"]["level"],
        log:
            f"{LOGS}/aggregate_seeds_{{variant}}.log",
        conda:
            CONDA_ENV
        script:
            "../scripts/aggregate_seeds.py"


rule inference:
    output:
        CATALOGUE.outputs("inference"),
    input:
        # every timed model in this one job: the base model (QLoRA's NF4 base), each variant's trained files
        base_model=rules.base_model.output.model,
        tokenizer=rules.tokenizer.output.tokenizer,
        **{variant: model_files(variant) for variant in VARIANTS},
    params:
        models=INFERENCE_MODELS,  # timed in interleaved rounds, their order rotated each round
        quantization=quantization(),
        dtype=config["evaluation"]["dtype"],
        prompts=config["evaluation"]["prompts"],
        # the prompts the paper timed each model on (QLoRA's for qlora_merged): its Table 11 protocol
        paper_prompts=config["evaluation"]["paper_prompts"],
        new_tokens=config["evaluation"]["new_tokens"],
        repetitions=config["evaluation"]["repetitions"],
        timing=config["timing"],
        bootstrap=config["evaluation"]["bootstrap"],
        metrics=declared_metrics,
    # timed: holds every core, so nothing runs beside it
    threads: TIMED_JOB_THREADS
    resources:
        scheduler_cores=SCHEDULER_CORES,
        mem_mb=8000,
        gpu=config["gpus"],
        runtime=240,
    log:
        f"{LOGS}/inference.log",
    benchmark:
        f"{BENCH}/inference.tsv"
    conda:
        CONDA_ENV
    script:
        "../scripts/benchmark_inference.py"


rule comparisons:
    output:
        CATALOGUE.outputs("comparisons"),
    input:
        metrics=CATALOGUE.comparison_inputs(architecture_only=False),
        audits=PERPLEXITY_AUDITS,
    params:
        metrics=declared_metrics,
        comparisons=CATALOGUE.comparison_params(architecture_only=False),
        radar=CATALOGUE.radar_params(architecture_only=False),
        level=config["evaluation"]["bootstrap"]["level"],
    log:
        f"{LOGS}/comparisons.log",
    conda:
        CONDA_ENV
    script:
        "../scripts/compare.py"


# The ones that need no weights (compression by formula and bitsandbytes layout, the notebook's numbers...),
# so `snakemake structure` has them too.
use rule comparisons as architecture_comparisons with:
    output:
        CATALOGUE.outputs("architecture_comparisons"),
    input:
        metrics=CATALOGUE.comparison_inputs(architecture_only=True),
    params:
        metrics=declared_metrics,
        comparisons=CATALOGUE.comparison_params(architecture_only=True),
        radar=CATALOGUE.radar_params(architecture_only=True),
        level=config["evaluation"]["bootstrap"]["level"],
    log:
        f"{LOGS}/architecture_comparisons.log",


# Beyond the paper (Table 14, Figure 3): the compression claim for published models, each from its shipped
# architecture file (configs/architectures/<model>.yaml, from the model's config.json) on the meta device, with the
# paper's recipe whatever profile runs: no weights, nothing from the hub. One job for all of them: each model takes
# about a second once transformers is imported, and the import costs about nine.
PUBLISHED_MODELS = [scope.removeprefix("published_") for scope in CATALOGUE.scopes("compression_across_models")]


rule compression_across_models:
    output:
        CATALOGUE.outputs("compression_across_models"),
    input:
        architectures=expand("configs/architectures/{published}.yaml", published=PUBLISHED_MODELS),
        recipe="configs/paper.yaml",  # the paper's recipe (over config.yaml), named in every file's inputs
    params:
        scopes=CATALOGUE.scopes("compression_across_models"),  # in the order of the architectures
        lora={key: value for key, value in PAPER_PROFILE["training"]["qlora"]["lora"].items()
              if key != "target_modules"},
        # the paper's seven names: their trainable share (null where they match no module, e.g. Phi-3's fused layers)
        paper_targets=PAPER_PROFILE["training"]["qlora"]["lora"]["target_modules"],
        # sizes and training state: LoRA on every linear layer but the output head (the seven names where they apply)
        size_targets="all-linear",
        double_quant=PAPER_PROFILE["training"]["qlora"]["quantization"]["double_quant"],
        full_optim=PAPER_PROFILE["training"]["full"]["optim"],
        full_weights_dtype=PAPER_PROFILE["training"]["full"]["weights_dtype"],
        qlora_optim=PAPER_PROFILE["training"]["qlora"]["optim"],
        metrics=declared_metrics,
        # where the values above come from, as each metric file names its inputs
        config_source=lambda wildcards, input: input.recipe,  # configs/paper.yaml
        config_keys=["training.qlora.lora", "training.qlora.quantization.double_quant", "training.full.optim",
                     "training.full.weights_dtype", "training.qlora.optim"],
    log:
        f"{LOGS}/compression_across_models.log",
    benchmark:
        f"{BENCH}/compression_across_models.tsv"
    conda:
        CONDA_ENV
    script:
        "../scripts/compression_across_models.py"
