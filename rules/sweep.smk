# Sweeps (`snakemake sweep`, not part of the default run): each grid file configs/sweeps/<name>.yaml (checked
# against schemas/sweep.schema.yaml; qrepro.sweep) names training settings and their values. Every point trains
# one variant with the point's values over the profile's (rule sweep_finetune: rule finetune's job, timed and alone
# as everywhere), into its own run folder results/sweeps/<name>/<point>/ (point: Snakemake's Paramspace pattern,
# variant~full/learning_rate~2e-05), and scores its final model token-level on the validation and the test split
# (rule sweep_perplexity: rule perplexity's job). Rule sweep_summary picks each variant's best point by validation
# perplexity and compares the variants on the test split at the profile's recipe and at each one's best.


wildcard_constraints:
    sweep="|".join(map(re.escape, SWEEPS)) or NO_MATCH,
    split="|".join(SWEEP_SPLITS),


use rule finetune as sweep_finetune with:
    output:
        weights=f"{POINT}/models/{{variant}}/model.safetensors",
        model_config=f"{POINT}/models/{{variant}}/config.json",
        log_history=f"{POINT}/train/{{variant}}/log_history.csv",
        hyperparameters=f"{POINT}/train/{{variant}}/hyperparameters.json",
        metrics=CATALOGUE.outputs("finetune", "{variant}", root=POINT),
    params:
        hp=point_hp,
        shared=point_shared,
        seed=SEEDS[0],  # one training per point: the first training seed
        timing=config["timing"],
        bootstrap=config["evaluation"]["bootstrap"],
        max_length=config["data"]["max_length"],
        metrics=declared_metrics,
        checkpoint_dir=lambda wc: f"{point_dir(wc.sweep, wc.point)}/checkpoints/{wc.variant}",
    wildcard_constraints:
        variant="full",
        point=points_pattern("full"),
    log:
        f"{LOGS}/sweeps/{{sweep}}/{{point}}/finetune_{{variant}}.log",
    benchmark:
        f"{BENCH}/sweeps/{{sweep}}/{{point}}/finetune_{{variant}}.tsv"


use rule sweep_finetune as sweep_finetune_qlora with:
    output:
        weights=f"{POINT}/models/{{variant}}/adapter_model.safetensors",
        model_config=f"{POINT}/models/{{variant}}/adapter_config.json",
        log_history=f"{POINT}/train/{{variant}}/log_history.csv",
        hyperparameters=f"{POINT}/train/{{variant}}/hyperparameters.json",
        metrics=CATALOGUE.outputs("finetune", "{variant}", root=POINT),
    wildcard_constraints:
        variant="qlora",
        point=points_pattern("qlora"),


use rule perplexity as sweep_perplexity with:
    output:
        metrics=CATALOGUE.outputs("sweep_perplexity", "{split}", root=POINT),
        # per window and per article NLLs of the split: what the paired bootstrap of rule sweep_summary resamples
        audit=f"{POINT}/eval/{{split}}/perplexity_audit.json",
    input:
        unpack(point_model),
        tokenizer=rules.tokenizer.output.tokenizer,
        raw=rules.corpus.output.raw,
    params:
        model=lambda wc: sweep_point(wc)["variant"],
        split=lambda wc: wc.split,
        protocols=["token"],
        quantization=quantization(),
        dtype=config["evaluation"]["dtype"],
        max_length=config["data"]["max_length"],
        paper_samples=config["evaluation"]["paper_perplexity_samples"],
        stride=config["evaluation"]["perplexity_stride"],
        batch_size=config["evaluation"]["perplexity_batch_size"],
        bootstrap=config["evaluation"]["bootstrap"],
        init=config["model"]["init"],
        metrics=declared_metrics,
    wildcard_constraints:
        point=points_pattern(),
    log:
        f"{LOGS}/sweeps/{{sweep}}/{{point}}/perplexity_{{split}}.log",
    benchmark:
        f"{BENCH}/sweeps/{{sweep}}/{{point}}/perplexity_{{split}}.tsv"


rule sweep_summary:
    output:
        CATALOGUE.outputs("sweep_summary", root=SWEEP_ROOT),
    input:
        lambda wc: [path for point in SWEEPS[wc.sweep].point_names() for path in point_files(wc.sweep, point).values()],
    params:
        sweep=lambda wc: dataclasses.asdict(SWEEPS[wc.sweep]),
        files=lambda wc: {point: point_files(wc.sweep, point) for point in SWEEPS[wc.sweep].point_names()},
        recipe=lambda wc: {v: SWEEPS[wc.sweep].recipe_point(config, v) for v in SWEEPS[wc.sweep].variants},
        level=config["evaluation"]["bootstrap"]["level"],
        metrics=declared_metrics,
    log:
        f"{LOGS}/sweeps/{{sweep}}/sweep_summary.log",
    conda:
        CONDA_ENV
    script:
        "../scripts/sweep_summary.py"



rule sweep_report:
    output:
        csv=f"{SWEEP_ROOT}/report/table.csv",
        tex=f"{SWEEP_ROOT}/report/table.tex",
        html=f"{SWEEP_ROOT}/report/table.html",
        png=f"{SWEEP_ROOT}/report/figure.png",
        pdf=f"{SWEEP_ROOT}/report/figure.pdf",
    input:
        summary=rules.sweep_summary.output,
        points=lambda wc: [path for point in SWEEPS[wc.sweep].point_names()
                           for split, path in point_files(wc.sweep, point).items() if split != "audit"],
        style="templates/plot.mplstyle",
    params:
        sweep=lambda wc: dataclasses.asdict(SWEEPS[wc.sweep]),
        files=lambda wc: {point: point_files(wc.sweep, point) for point in SWEEPS[wc.sweep].point_names()},
    log:
        f"{LOGS}/sweeps/{{sweep}}/sweep_report.log",
    conda:
        CONDA_ENV
    script:
        "../scripts/sweep_report.py"
