# Paths and parameter helpers shared by all the .smk files. No torch import here (parsing stays instant).
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "scripts"))
from qrepro.config_checks import check as check_config  # noqa: E402

check_config(config)

VARIANTS = ["full", "qlora"]
RESULTS = "results"
LOGS = f"{RESULTS}/logs"
BENCH = f"{RESULTS}/benchmarks"

TRAIN_METRICS = [
    "total_params", "trainable_params", "trainable_percent", "train_time_s", "time_per_step_s",
    "pure_step_time_s", "train_steps", "train_loss_first", "train_loss_final", "precision",
    "peak_train_memory_mb",
]


def lib(*modules):
    """Library modules imported by a job, declared as inputs so that editing one re-runs its users."""
    return [f"scripts/qrepro/{m}.py" for m in ("__init__", "runlog") + modules]


def metrics_for(variant, names):
    return [f"{RESULTS}/metrics/{variant}/{name}.json" for name in names]


def variant_hp(wildcards):
    return config["training"][wildcards.variant]


def shared_training():
    return {k: v for k, v in config["training"].items() if k not in VARIANTS}


TRAIN_TARGETS = [m for v in VARIANTS for m in metrics_for(v, TRAIN_METRICS)] + [
    f"{RESULTS}/train/{v}/log_history.csv" for v in VARIANTS
]

# One environment for every rule (used with --use-conda); the pins live in requirements.txt.
CONDA_ENV = "../environment.yml"


def base_model_inputs(wildcards):
    inputs = {"tokenizer": rules.tokenizer.output.tokenizer}
    if config["model"]["source"] == "pretrain" and config["model"]["init"] == "pretrained":
        inputs["pretrain_data"] = rules.tokenize_pretrain.output.tokenized
    return inputs
