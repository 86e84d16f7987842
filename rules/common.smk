# Paths and parameter helpers shared by all the .smk files. No torch import here (parsing stays instant).
import os
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

sys.path.insert(0, str(Path(workflow.basedir) / "scripts"))
from qrepro import catalogue  # noqa: E402
from qrepro.config_checks import check as check_config  # noqa: E402
from qrepro.dependencies import library_files  # noqa: E402

# Everything but the device is checked at parse time. The device checks (fp16, or allow_cpu=false, without CUDA)
# wait for onstart, and apply only when a job that runs on the accelerator (a rule with the `gpu` resource) will
# run, unless the checks do not concern it (DEVICE_CHECK_EXEMPT, defined beside the exempt rule). Dry runs and
# weight-free targets (structure, tables) work on any machine.
check_config(config, check_device=False)


onstart:
    on_accelerator = [job.rule.name for job in workflow.dag.needrun_jobs() if "gpu" in job.rule.resources]
    if set(on_accelerator) - DEVICE_CHECK_EXEMPT:
        check_config(config, check_device=True)

VARIANTS = ["full", "qlora"]
# Declared files (not directories), so a deleted weight file is noticed and named by Snakemake.
MODEL_FILES = {"full": ["model.safetensors", "config.json"], "qlora": ["adapter_model.safetensors", "adapter_config.json"]}
RESULTS = "results"
LOGS = f"{RESULTS}/logs"
BENCH = f"{RESULTS}/benchmarks"

# Every metric file, its rule, unit and method: paper/metrics.yaml. Targets and declared outputs come from it.
CATALOGUE = catalogue.load("paper/metrics.yaml")


def declared_metrics(wildcards, output):
    """A job's metric outputs with their catalogue entries (params.metrics): what write_metrics checks it writes.
    As a param, an edited unit or method re-runs exactly the rule that writes that metric."""
    return CATALOGUE.declared(output)


def scheduler_cores():
    """Cores Snakemake was given (--cores) with its local executor; 1 where none were (a dry run)."""
    try:
        return workflow.cores
    except WorkflowError:
        return 1


# Timed jobs (training, inference, the MFU peak, the memory probe) reserve every core, so Snakemake's local
# executor runs no other job beside them whatever --cores is; their metric files record it
# (runlog.alone_evidence). A cluster executor places jobs itself: there the files say it was not checked.
ALONE = scheduler_cores()
ALONE_EVIDENCE = ALONE if getattr(workflow, "local_exec", True) else 0


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
    return {k: v for k, v in config["training"].items() if k not in VARIANTS}


TRAIN_TARGETS = CATALOGUE.outputs("finetune") + [
    f"{RESULTS}/train/{v}/log_history.csv" for v in VARIANTS
]

# One environment for every rule (used with --use-conda); the pins live in requirements.txt.
CONDA_ENV = "../environment.yml"


def base_model_inputs(wildcards):
    inputs = {"tokenizer": rules.tokenizer.output.tokenizer}
    if config["model"]["source"] == "pretrain" and config["model"]["init"] == "pretrained":
        inputs["pretrain_data"] = rules.tokenize_pretrain.output.tokenized
    return inputs

PERPLEXITY_MODELS = CATALOGUE.scopes("perplexity")
INFERENCE_MODELS = CATALOGUE.scopes("inference")


def model_files(variant):
    """A trained variant's declared files: the whole model for full, adapter weights + config for qlora."""
    return [f"{RESULTS}/models/{variant}/{name}" for name in MODEL_FILES[variant]]


def trained_model(wildcards):
    """The files a model kind is evaluated from: none for base, the adapter for qlora and qlora_merged."""
    if wildcards.model == "base":
        return {}
    return {"model": model_files(wildcards.model.removesuffix("_merged"))}


def variant_model(wildcards):
    return model_files(wildcards.variant)


def artifact_state(wildcards):
    """Size and mtime of every trained-model file (or 'missing'). As a param of the manifest rule it makes
    a deleted or replaced weight file re-run the manifest, which then fails naming it."""
    state = {}
    for variant in VARIANTS:
        for path in model_files(variant):
            try:
                stat = os.stat(path)
                state[path] = [stat.st_size, stat.st_mtime_ns]
            except FileNotFoundError:
                state[path] = "missing"
    return state


def structure_inputs(wildcards):
    if config["model"]["architecture"]["vocab_size"] is None:
        return {"tokenizer": rules.tokenizer.output.tokenizer}
    return {}


def quantization():
    return config["training"]["qlora"]["quantization"]


def paper_profile():
    """configs/paper.yaml on top of config.yaml, as `--configfile configs/paper.yaml` would give."""
    from qrepro.config_checks import merged_profile

    return merged_profile("config.yaml", "configs/paper.yaml")


PAPER = paper_profile()
METRIC_TARGETS = CATALOGUE.paths() + [f"{RESULTS}/train/{v}/hyperparameters.json" for v in VARIANTS]
# Weight-free: the architecture, formulas and the notebook's numbers, for this run's and the paper's architecture.
STRUCTURE_TARGETS = (CATALOGUE.outputs("structure_metrics") + CATALOGUE.outputs("paper_structure_metrics")
                     + CATALOGUE.outputs("architecture_comparisons"))


# A committed GPU reference run (reference/<gpu>-<profile>/, written by `snakemake reference` on a CUDA machine):
# the report judges the GPU-only ratio claims from it when this run cannot.
def reference_dir():
    wanted = config["reference_run"]
    found = sorted(p.parent.name for p in Path("reference").glob("*/provenance.json"))
    if wanted == "none" or not found:
        return None
    if wanted == "auto":
        return f"reference/{found[0]}"
    if wanted not in found:
        raise ValueError(f"reference_run={wanted!r}: no reference/{wanted}/provenance.json (found: {found or 'none'})")
    return f"reference/{wanted}"


def gpu_name():
    """The GPU's name from nvidia-smi (no torch at parse time); None without one."""
    import shutil
    import subprocess

    if not shutil.which("nvidia-smi"):
        return None
    result = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True)
    names = result.stdout.strip().splitlines()
    return names[0].strip() if result.returncode == 0 and names else None


def reference_name():
    """reference/<gpu>-<profile>, e.g. h200-paper-arch."""
    import re

    gpu = (gpu_name() or "no-gpu").lower()
    gpu = re.sub(r"^(nvidia|tesla)\s+", "", gpu)
    slug = re.sub(r"[^a-z0-9]+", "-", gpu).strip("-")
    return f"{slug}-{config['profile']}"


REFERENCE = reference_dir()
REFERENCE_METRICS = sorted(str(p) for p in Path(REFERENCE).glob("metrics/*/*.json")) if REFERENCE else []
REFERENCE_PROVENANCE = [f"{REFERENCE}/provenance.json"] if REFERENCE else []


TABLE_NUMBERS = [t["number"] for t in CATALOGUE.tables if REFERENCE or not t.get("reference")]
TABLE_FILES = {ext: [f"{RESULTS}/tables/table{n:02d}.{ext}" for n in TABLE_NUMBERS] for ext in ("csv", "tex", "html")}
REPORT_METRICS = [m for m in METRIC_TARGETS if "/metrics/" in m]
HYPERPARAMETERS = {v: f"{RESULTS}/train/{v}/hyperparameters.json" for v in VARIANTS}


def git_commit():
    """The commit the report is built from (provenance); 'unknown' outside a git checkout."""
    import subprocess

    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=workflow.basedir, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=workflow.basedir,
                               capture_output=True, text=True).stdout.strip()
        return head + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def config_digest():
    import hashlib
    import json

    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()


def run_settings():
    """What the report says about the run's setup; numbers still come from results/."""
    data, model, lora = config["data"], config["model"], config["training"]["qlora"]["lora"]
    paper_data = (data["source"] == "hf" and data["hf"]["name"] == PAPER["data"]["hf"]["name"]
                  and data["hf"]["config"] == PAPER["data"]["hf"]["config"]
                  and data["max_length"] == PAPER["data"]["max_length"])
    return {"label": config["run_label"], "profile": config["profile"], "paper_recipe": is_paper_recipe(),
            "model_source": model["source"],
            "hub_id": model["hub_id"], "revision": model["revision"], "local_path": model["local_path"],
            "init": model["init"], "data_source": data["source"], "hf_name": data["hf"]["name"],
            "hf_config": data["hf"]["config"], "local_dir": data["local_dir"], "packing": data["packing"],
            "paper_data": paper_data, "lora_r": lora["r"], "lora_alpha": lora["alpha"]}


def is_paper_recipe():
    """Whether this run trains with the paper's recipe (Tables 3-4, configs/paper.yaml) at its sequence length:
    a GPU run that does, at the paper's architecture, can judge the claims about time and memory ratios."""
    recipe = lambda c: ({k: c["training"][k] for k in ("precision", "max_steps", "warmup_steps", "eval_steps",  # noqa: E731
                                                       "eval_max_samples", "save_steps", "max_grad_norm")},
                        {v: {k: c["training"][v][k] for k in ("batch_size", "eval_batch_size", "learning_rate",
                                                              "gradient_accumulation_steps", "optim",
                                                              "gradient_checkpointing")} for v in VARIANTS},
                        c["training"]["qlora"]["quantization"], c["training"]["qlora"]["lora"],
                        c["data"]["max_length"], c["data"]["packing"])
    return recipe(config) == recipe(PAPER)


def paper_setup():
    """The paper's setup where the report names it (configs/paper.yaml is its one home)."""
    return {"hub_id": PAPER["model"]["hub_id"], "max_length": PAPER["data"]["max_length"],
            "max_steps": PAPER["training"]["max_steps"], "eval_steps": PAPER["training"]["eval_steps"],
            "hf_name": PAPER["data"]["hf"]["name"], "hf_config": PAPER["data"]["hf"]["config"],
            "precision": PAPER["training"]["precision"], "load_dtype": PAPER["model"]["load_dtype"]}


PROBE_TARGETS = CATALOGUE.paths(target="memory")


def existing_probe_metrics(wildcards):
    """The memory probe's files, when `snakemake memory` has been run: Table 5 then shows them too."""
    return [path for path in PROBE_TARGETS if os.path.exists(path)]
