# The report: every table and figure (paper/metrics.yaml, templates/outline.yaml) from results/metrics, rendered to HTML and LaTeX/PDF.
# Plot and render rules are kept apart from compute rules: editing a template or the style re-runs only these.


rule tables:
    output:
        csv=TABLE_FILES["csv"],
        tex=TABLE_FILES["tex"],
        html=report(TABLE_FILES["html"], category="Tables"),
        index=f"{RESULTS}/tables/index.json",
    input:
        probe=existing_probe_metrics,
        metrics=REPORT_METRICS,
        hp_full=HYPERPARAMETERS["full"],
        hp_qlora=HYPERPARAMETERS["qlora"],
        paper_values="paper/paper_values.yaml",
        reference_metrics=REFERENCE_METRICS,
    params:
        tables_dir=lambda wc, output: str(Path(output.index).parent),
        tables=CATALOGUE.tables,
        reference=REFERENCE or "",
    log:
        f"{LOGS}/tables.log",
    conda:
        CONDA_ENV
    script:
        "../scripts/make_tables.py"


rule figure1:
    output:
        png=report(f"{RESULTS}/figures/figure1.png", category="Figures", caption="../templates/figure1.rst"),
        pdf=f"{RESULTS}/figures/figure1.pdf",
    input:
        metrics=REPORT_METRICS,
        style="templates/plot.mplstyle",
    log:
        f"{LOGS}/figure1.log",
    conda:
        CONDA_ENV
    script:
        "../scripts/plot_figure1.py"


rule figure2:
    output:
        png=report(f"{RESULTS}/figures/figure2.png", category="Figures", caption="../templates/figure2.rst"),
        pdf=f"{RESULTS}/figures/figure2.pdf",
    input:
        metrics=REPORT_METRICS,
        style="templates/plot.mplstyle",
    params:
        axes=[(axis["axis"], axis["label"]) for axis in CATALOGUE.radar["axes"]],
        paper_standard=CATALOGUE.radar["paper_standard"],
    log:
        f"{LOGS}/figure2.log",
    conda:
        CONDA_ENV
    script:
        "../scripts/plot_figure2.py"


# Beyond the paper: the compression claim across published models (rule compression_across_models).
rule figure3:
    output:
        png=report(f"{RESULTS}/figures/figure3.png", category="Figures", caption="../templates/figure3.rst"),
        pdf=f"{RESULTS}/figures/figure3.pdf",
    input:
        metrics=CATALOGUE.outputs("compression_across_models"),
        style="templates/plot.mplstyle",
    params:
        paper_compression=PAPER_NUMBERS["t5_compression"]["value"],
    log:
        f"{LOGS}/figure3.log",
    conda:
        CONDA_ENV
    script:
        "../scripts/plot_figure3.py"


rule manifest:
    output:
        manifest=f"{RESULTS}/manifest.json",
    input:
        all_model_files(),
        probe=existing_probe_metrics,
        metrics=REPORT_METRICS,
        reference=REFERENCE_METRICS + REFERENCE_PROVENANCE,
        others=list(HYPERPARAMETERS.values()) + TABLE_FILES["csv"] + TABLE_FILES["tex"] + TABLE_FILES["html"]
        + rules.figure1.output + rules.figure2.output + rules.figure3.output,
        sweeps=sweep_report_inputs,  # the finished sweeps' files (none unless `snakemake sweep` ran)
    params:
        # a deleted weight file re-runs this job and so re-trains (snakemake/snakemake#1978)
        deleted_weights=weights_deleted_since_the_manifest,
    log:
        f"{LOGS}/manifest.log",
    conda:
        CONDA_ENV
    script:
        "../scripts/write_manifest.py"


rule render:
    output:
        tex="report/report.tex",
        html="report/report.html",
    input:
        "configs/paper.yaml",
        templates=["templates/report.tex.j2", "templates/table.tex.j2", "templates/report.html.j2", "templates/prose.j2"],
        outline="templates/outline.yaml",
        paper_values=PAPER_VALUES,
        manifest=rules.manifest.output.manifest,
        metrics=REPORT_METRICS,
        tables=rules.tables.output.index,
        claims="paper/claims.yaml",
        figure1_png=rules.figure1.output.png,
        figure1_pdf=rules.figure1.output.pdf,
        figure2_png=rules.figure2.output.png,
        figure2_pdf=rules.figure2.output.pdf,
        figure3_png=rules.figure3.output.png,
        figure3_pdf=rules.figure3.output.pdf,
        hp_full=HYPERPARAMETERS["full"],
        hp_qlora=HYPERPARAMETERS["qlora"],
        reference_metrics=REFERENCE_METRICS,
        reference_provenance=REFERENCE_PROVENANCE,
        sweeps=sweep_report_inputs,
    params:
        template_dir=lambda wc, input: str(Path(input.templates[0]).parent),
        sweeps=sweep_report_params,
        run=RUN_SETTINGS,
        paper=profile.paper_setup(PAPER_PROFILE),
        radar_standard=CATALOGUE.radar["paper_standard"],
        reference=REFERENCE or "",
        config_digest=profile.config_digest(config),
    log:
        f"{LOGS}/render.log",
    conda:
        CONDA_ENV
    script:
        "../scripts/render_report.py"


rule pdf:
    output:
        pdf="report/report.pdf",
    input:
        tex=rules.render.output.tex,
        figures=[rules.figure1.output.pdf, rules.figure2.output.pdf, rules.figure3.output.pdf],
        sweep_figures=lambda wc: [path for path in sweep_report_inputs(wc) if path.endswith("figure.pdf")],
    log:
        f"{LOGS}/pdf.log",
    conda:
        CONDA_ENV
    script:
        "../scripts/compile_pdf.py"


# `snakemake reference` on a CUDA machine (GPU profile, e.g. configs/paper-arch.yaml): the run's metric files,
# manifest and benchmark times, with the command, commit, GPU, driver and package versions, into
# reference/<gpu>-<profile>/ to be committed (the `reference` target names the folder from nvidia-smi when it is
# asked for). Any later report (any profile) judges GPU-only claims from it.
rule write_reference:
    output:
        directory("reference/{reference_name}"),
    wildcard_constraints:
        reference_name=r"[a-z0-9][a-z0-9-]*",
    input:
        manifest=rules.manifest.output.manifest,
        metrics=REPORT_METRICS,
        report=rules.render.output.html,  # the whole GPU-profile DAG has run
    params:
        run=RUN_SETTINGS,
        command=" ".join(["snakemake", *sys.argv[1:]]),
        config_digest=profile.config_digest(config),
        benchmarks_dir=BENCH,
    log:
        f"{LOGS}/write_reference_{{reference_name}}.log",
    conda:
        CONDA_ENV
    script:
        "../scripts/write_reference.py"


# `snakemake docs`: the metric reference (docs/metrics.md) from the catalogue; a test keeps the committed copy current.
rule metric_reference:
    output:
        reference="docs/metrics.md",
    input:
        catalogue="paper/metrics.yaml",
    log:
        f"{LOGS}/metric_reference.log",
    conda:
        CONDA_ENV
    script:
        "../scripts/metric_reference.py"
