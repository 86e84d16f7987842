# Paths, targets and input functions shared by all the .smk files. Parsing imports only the shared layer of the
# installed package (pip install -e .): no torch, and no program is run (git and nvidia-smi run in the jobs).
import dataclasses
import os
import re
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

from qrepro import catalogue, cluster, config_checks, hardware, profile, seeds
from qrepro import sweep
from qrepro.dependencies import library_files
from qrepro.paper import PAPER_VALUES, load_paper_values
from qrepro.runlog import nvidia_smi

# Everything but the device is checked at parse time. The device checks (fp16, or allow_cpu=false, without CUDA)
# wait for onstart, and apply only when a job that runs on the accelerator (a rule with the `gpu` resource) will
# run, unless the checks do not concern it (DEVICE_CHECK_EXEMPT, below). Dry runs and
# weight-free targets (structure, tables) work on any machine.
config_checks.check(config, check_device=False)

# Rules the device checks do not concern: the memory probe trains at probe.precision on whatever device there is, CPU
# included at any scale (rules/probe.smk).
DEVICE_CHECK_EXEMPT = {"memory_probe"}


# On SLURM the jobs run on the cluster's nodes, not here: instead of this machine's device, the site settings and
# the partition's GPUs are checked (qrepro.cluster), before anything is submitted.
onstart:
    jobs = list(workflow.dag.needrun_jobs())
    if submits_to_slurm():
        found = cluster.settings_problems({job.rule.name: dict(job.resources.items()) for job in jobs})
        found += cluster.exclusive_problems({job.rule.name: job.resources.get("slurm_extra") for job in jobs
                                             if "scheduler_cores" in job.rule.resources})
        if not found:
            found = cluster.gpu_problems({job.rule.name: (job.resources.get("slurm_partition"),
                                                          job.resources.get("gpu") or 0) for job in jobs})
        if found:
            raise WorkflowError("Cannot submit to SLURM:\n  - " + "\n  - ".join(found))
    elif {job.rule.name for job in jobs if "gpu" in job.rule.resources} - DEVICE_CHECK_EXEMPT:
        config_checks.check(config, check_device=True)


def check_device_in_cluster_job():
    """A job a cluster executor started parses the workflow itself and runs no onstart (--no-hooks): where one of its
    rules runs on the accelerator, the device checks run here, on the node, before the job's work. Without them a
    node whose GPU is not visible would evaluate on the CPU without a word."""
    if not workflow.remote_exec:
        return
    targets = cluster.target_rules(sys.argv)  # the DAG settings do not exist yet while the workflow parses
    on_accelerator = sorted(name for name in targets - DEVICE_CHECK_EXEMPT if "gpu" in workflow.get_rule(name).resources)
    # a device node, and not hidden by the scheduler (SLURM sets CUDA_VISIBLE_DEVICES to the job's GPUs)
    cuda = hardware.cuda_visible_without_torch() and os.environ.get("CUDA_VISIBLE_DEVICES", "0") not in ("", "-1",
                                                                                                      "NoDevFiles")
    found = config_checks.problems(config, cuda=cuda, check_device=True) if on_accelerator else []
    if found:
        visible = {key: os.environ.get(key, "unset") for key in ("CUDA_VISIBLE_DEVICES", "SLURM_JOB_GPUS")}
        raise WorkflowError(f"Job {', '.join(on_accelerator)} on host {os.uname().nodename} ({visible}) cannot run "
                            "here:\n  - " + "\n  - ".join(found))


def submits_to_slurm():
    plugin = workflow.executor_plugin
    return plugin is not None and plugin.name.removeprefix("snakemake-executor-plugin-") == "slurm"


VARIANTS = list(profile.VARIANTS)
# Declared files (not directories), so a deleted weight file is noticed and named by Snakemake.
MODEL_FILES = {"full": ["model.safetensors", "config.json"], "qlora": ["adapter_model.safetensors", "adapter_config.json"]}
RESULTS = "results"
LOGS = f"{RESULTS}/logs"
BENCH = f"{RESULTS}/benchmarks"
# One environment for every rule (used with --use-conda); the pins live in requirements.txt.
CONDA_ENV = "../environment.yml"
BUNDLED = config["data"]["bundled"]  # the real text shipped in the repository (data.source: bundled)

# Every metric file, its rule, unit and method: paper/metrics.yaml. Targets and declared outputs come from it.
CATALOGUE = catalogue.load("paper/metrics.yaml")
PAPER_PROFILE = config_checks.merged_profile("config.yaml", "configs/paper.yaml")  # as --configfile would give it
PAPER_NUMBERS = load_paper_values(PAPER_VALUES)


def scheduler_cores():
    """Cores Snakemake was given (--cores) with its local executor; 1 where none were (a dry run)."""
    try:
        return workflow.cores
    except WorkflowError:
        return 1


# Timed jobs (training, inference, the MFU peak, the memory probe) take every core Snakemake was given, so its
# local executor runs no other job beside them whatever --cores is; their metric files record it
# (runlog.alone_evidence). A job a cluster executor started runs its own Snakemake (exec mode remote), which sees
# that job alone: there SCHEDULER_CORES is 0, and the evidence comes from the cluster (SLURM: sacct) instead.
TIMED_JOB_THREADS = scheduler_cores()
SCHEDULER_CORES = 0 if workflow.remote_exec else TIMED_JOB_THREADS

# Training seeds (training.seeds; null = the config seed). One, as the paper: each variant trains once, into
# results/. Several: each variant trains once per seed into results/seeds/<seed>/ (its models, metric files and
# perplexity audits), one run after another, and rule aggregate_seeds writes results/metrics/<variant>/ as the mean
# over the seeds (with their values, sd and an interval). What is measured on one trained model (size, FLOPs,
# inference, MFU's step time aside) uses the first seed's run.
SEEDS = seeds.training_seeds(config)
SEEDED = len(SEEDS) > 1
RUN = f"{RESULTS}/seeds/{{seed}}" if SEEDED else RESULTS  # one seed's run folder: a pattern with {seed} when several
SEED_TAG = "_seed{seed}" if SEEDED else ""  # in the names of a seed's log and benchmark files


def run_dir(seed=None):
    """The run folder of one training seed (the first by default); results/ itself with one seed."""
    return RUN.format(seed=SEEDS[0] if seed is None else seed)


def training_seed(wildcards):
    return int(wildcards.seed) if SEEDED else SEEDS[0]


PERPLEXITY_MODELS = CATALOGUE.scopes("perplexity")
# what the training seed changes: the trained variants' finetune and perplexity files (one set per seed's run)
SEEDED_PERPLEXITY_MODELS = [m for m in PERPLEXITY_MODELS if m in VARIANTS] if SEEDED else []
SEED_AGGREGATES = CATALOGUE.outputs("finetune", "{variant}") + CATALOGUE.outputs("perplexity", "{variant}")


def seed_run_files(path):
    """The same results/ file in each training seed's run folder, in seed order."""
    return [path.replace(f"{RESULTS}/", f"{run_dir(seed)}/", 1) for seed in SEEDS]


def perplexity_audit(model, seed=None):
    """The per-row and per-window NLLs of a model's perplexities (a trained variant's: one per training seed)."""
    folder = run_dir(seed) if model in SEEDED_PERPLEXITY_MODELS else RESULTS
    return f"{folder}/eval/{model}/perplexity_audit.json"


# the audits of the models whose perplexities a comparison combines: the comparisons rule reads them for the paired
# bootstrap interval (qrepro.derived.paired_interval), every seed's
PERPLEXITY_AUDITS = sorted({perplexity_audit(scope, seed) for c in CATALOGUE.comparisons for scope, metric in c.inputs()
                            if metric in ("perplexity_paper", "perplexity_token") for seed in SEEDS})
INFERENCE_MODELS = CATALOGUE.scopes("inference")
HYPERPARAMETERS = {v: f"{run_dir()}/train/{v}/hyperparameters.json" for v in VARIANTS}
TRAIN_TARGETS = CATALOGUE.outputs("finetune") + [f"{run_dir(s)}/train/{v}/log_history.csv" for s in SEEDS
                                                  for v in VARIANTS]
METRIC_TARGETS = CATALOGUE.paths() + list(HYPERPARAMETERS.values())
REPORT_METRICS = CATALOGUE.paths()
# Weight-free: the architecture, formulas and the notebook's numbers, for this run's and the paper's architecture.
STRUCTURE_TARGETS = (CATALOGUE.outputs("structure_metrics") + CATALOGUE.outputs("paper_structure_metrics")
                     + CATALOGUE.outputs("architecture_comparisons")
                     # beyond the paper: published models' compression from their architecture files (Table 14)
                     + CATALOGUE.outputs("compression_across_models"))
PROBE_TARGETS = CATALOGUE.paths(target="memory")

# A committed GPU reference run (reference/<gpu>-<profile>/, written by `snakemake reference` on a CUDA machine):
# the report judges the GPU-only ratio claims from it when this run cannot.
REFERENCE = profile.reference_dir(config["reference_run"])
REFERENCE_METRICS = sorted(str(p) for p in Path(REFERENCE).glob("metrics/*/*.json")) if REFERENCE else []
REFERENCE_PROVENANCE = [f"{REFERENCE}/provenance.json"] if REFERENCE else []
TABLE_NUMBERS = [t.number for t in CATALOGUE.tables if REFERENCE or not t.reference]
TABLE_FILES = {ext: [f"{RESULTS}/tables/table{n:02d}.{ext}" for n in TABLE_NUMBERS] for ext in ("csv", "tex", "html")}
RUN_SETTINGS = profile.run_settings(config, PAPER_PROFILE)


def declared_metrics(wildcards, output):
    """A job's metric outputs with their catalogue entries (params.metrics): what write_metrics checks it writes.
    As a param, an edited unit or method re-runs exactly the rule that writes that metric."""
    return CATALOGUE.declared(output)


def declare_library_inputs(rules_):
    """Make every library file a rule's script imports (qrepro.dependencies: an ast walk, transitive) an input of
    that rule, so editing a module re-runs exactly the rules that use it. Called once, after all rules exist."""
    for rule_ in rules_:
        if rule_.script:
            script = Path(rule_.snakefile).parent / rule_.script
            rule_.set_input(*library_files(script, Path(workflow.basedir) / "scripts", workflow.basedir))


def variant_hp(wildcards):
    return config["training"][wildcards.variant]


def shared_training():
    """The training settings both variants share; the seeds are the rule's wildcard, one job each."""
    return {k: v for k, v in config["training"].items() if k not in (*VARIANTS, "seeds")}


def quantization():
    return config["training"]["qlora"]["quantization"]


def base_model_inputs(wildcards):
    inputs = {"tokenizer": rules.tokenizer.output.tokenizer}
    if config["model"]["source"] == "pretrain" and config["model"]["init"] == "pretrained":
        inputs["pretrain_data"] = rules.tokenize_pretrain.output.tokenized
    return inputs


def model_files(variant, seed=None):
    """A trained variant's declared files: the whole model for full, adapter weights + config for qlora (the first
    training seed's run unless a seed is given)."""
    return [f"{run_dir(seed)}/models/{variant}/{name}" for name in MODEL_FILES[variant]]


def all_model_files():
    return [path for seed in SEEDS for variant in VARIANTS for path in model_files(variant, seed)]


def evaluated_model(wildcards):
    """The files a model is loaded from, and nothing else: the base model for base; the whole model for full; the
    base model (quantized to NF4 on loading) and the adapter for qlora and qlora_merged. A job with a {seed}
    wildcard loads that seed's run, any other the first seed's."""
    kind = wildcards.model if hasattr(wildcards, "model") else wildcards.variant
    inputs = {}
    if kind != "full":
        inputs["base_model"] = rules.base_model.output.model
    if kind != "base":
        inputs["model"] = model_files(kind.removesuffix("_merged"), getattr(wildcards, "seed", None))
    return inputs


def weights_deleted_since_the_manifest(wildcards):
    """The trained-model files missing although the manifest (built from them) exists, or "none". As a param of the
    manifest rule it makes a deleted weight file re-train its variant and everything measured from it (Snakemake
    ignores a deleted file whose consumers' outputs exist: snakemake/snakemake#1978); a replaced one is newer than the
    manifest, which re-runs it anyway. It reads "none" whenever the manifest is missing, so the value Snakemake records
    is the same whether it evaluated the param before training (a cluster executor, which records the value from
    when the DAG was built) or after it."""
    if not os.path.exists(f"{RESULTS}/manifest.json"):
        return "none"
    missing = [path for path in all_model_files() if not os.path.exists(path)]
    return missing or "none"


def structure_inputs(wildcards):
    if config["model"]["architecture"] and config["model"]["architecture"]["vocab_size"] is None:
        return {"tokenizer": rules.tokenizer.output.tokenizer}
    return {}


def existing_probe_metrics(wildcards):
    """The memory probe's files, when `snakemake memory` has been run: Table 5 then shows them too."""
    return [path for path in PROBE_TARGETS if os.path.exists(path)]


# Sweeps (rules/sweep.smk, `snakemake sweep`): the grid files configs/sweeps/*.yaml, each checked against the
# profile at parse time (qrepro.sweep), their point folders and the files of each point.
SWEEPS = sweep.load_all("configs/sweeps", config, VARIANTS)
SWEEP_ROOT = f"{RESULTS}/sweeps/{{sweep}}"
POINT = f"{SWEEP_ROOT}/{{point}}"  # a point's run folder: models/, train/, metrics/, eval/ as in results/
SWEEP_SPLITS = ["validation", "test"]
NO_MATCH = "(?!x)x"  # a wildcard constraint no value meets: no sweep, no point


def points_pattern(variant=None):
    """The point folders of every sweep (of one variant), as a wildcard constraint."""
    names = {re.escape(name) for s in SWEEPS.values() for name in s.point_names(variant)}
    return "|".join(sorted(names)) or NO_MATCH


def sweep_point(wildcards):
    return SWEEPS[wildcards.sweep].point(wildcards.point)


def point_dir(name, point):
    return f"{RESULTS}/sweeps/{name}/{point}"


def point_hp(wildcards):
    return sweep.point_training(config["training"], SWEEPS[wildcards.sweep].overrides(wildcards.point),
                                 wildcards.variant, VARIANTS)[0]


def point_shared(wildcards):
    return sweep.point_training(config["training"], SWEEPS[wildcards.sweep].overrides(wildcards.point),
                                 wildcards.variant, VARIANTS)[1]


def point_model(wildcards):
    """What a point's perplexity job loads: the base model, and the point's trained files (rule evaluated_model)."""
    variant = sweep_point(wildcards)["variant"]
    inputs = {"model": [f"{point_dir(wildcards.sweep, wildcards.point)}/models/{variant}/{name}"
                        for name in MODEL_FILES[variant]]}
    if variant != "full":
        inputs["base_model"] = rules.base_model.output.model
    return inputs


def point_files(name, point):
    """A point's validation and test perplexity files and its test audit (what rule sweep_summary reads)."""
    folder = point_dir(name, point)
    return {"validation": f"{folder}/metrics/validation/perplexity_token.json",
            "test": f"{folder}/metrics/test/perplexity_token.json",
            "audit": f"{folder}/eval/test/perplexity_audit.json"}


def sweep_summary_files(name):
    return [path.replace("{sweep}", name) for path in CATALOGUE.outputs("sweep_summary", root=SWEEP_ROOT)]


SWEEP_REPORT_FILES = ("table.csv", "table.tex", "table.html", "figure.png", "figure.pdf")  # rule sweep_report


def sweep_report_files(name):
    return [f"{RESULTS}/sweeps/{name}/report/{file}" for file in SWEEP_REPORT_FILES]


SWEEP_TARGETS = [path for name in SWEEPS for path in sweep_summary_files(name) + sweep_report_files(name)]


def finished_sweeps():
    """The sweeps whose summary, table and figure exist (`snakemake sweep` has run them): the report shows those,
    and only those; the default run neither needs nor runs a sweep."""
    return [name for name in SWEEPS
            if all(os.path.exists(path) for path in sweep_summary_files(name) + sweep_report_files(name))]


def sweep_report_inputs(wildcards):
    """Every file the report reads of the finished sweeps: summaries, each point's two perplexities, table, figure."""
    return [path for name in finished_sweeps() for path in sweep_summary_files(name) + sweep_report_files(name)
            + [file for point in SWEEPS[name].point_names() for split, file in point_files(name, point).items()
               if split != "audit"]]


def sweep_report_params(wildcards):
    """What the render job needs to show each finished sweep (its files by role, its grid)."""
    return [{"sweep": dataclasses.asdict(SWEEPS[name]), "summary": sweep_summary_files(name),
             "report": dict(zip(SWEEP_REPORT_FILES, sweep_report_files(name))),
             "files": {point: point_files(name, point) for point in SWEEPS[name].point_names()}}
            for name in finished_sweeps()]
