# QLoRA vs full fine-tuning: the paper rebuilt from raw outputs.
# Thin on purpose: settings, validation, includes and the named targets. Rules live in rules/*.smk.
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config.yaml"


validate(config, "schemas/config.schema.yaml")


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/model.smk"
include: "rules/train.smk"
include: "rules/evaluate.smk"
include: "rules/sweep.smk"
include: "rules/report.smk"
include: "rules/probe.smk"


declare_library_inputs(workflow.rules)
check_device_in_cluster_job()


# the named targets only gather files: on a cluster they run here, not as jobs
localrules:
    report,
    html,
    train,
    metrics,
    structure,
    reference,
    memory,
    docs,
    sweep,


rule report:
    default_target: True
    input:
        rules.pdf.output.pdf,
        rules.render.output.html,


rule html:
    input:
        rules.render.output.html,


rule train:
    input:
        TRAIN_TARGETS,


rule metrics:
    input:
        METRIC_TARGETS,


rule structure:
    input:
        STRUCTURE_TARGETS,


rule reference:
    input:
        # named from the GPU when this target is asked for: nvidia-smi runs here, never while the workflow parses
        lambda wildcards: f"reference/{profile.reference_name(nvidia_smi('name'), config['profile'])}",


rule memory:
    input:
        PROBE_TARGETS,


rule docs:
    input:
        rules.metric_reference.output,


# not part of the default run: every grid file of configs/sweeps (rules/sweep.smk); `report` then shows them
rule sweep:
    input:
        SWEEP_TARGETS,
