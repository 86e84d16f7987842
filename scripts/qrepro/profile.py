"""What a profile (config.yaml plus --configfile overlays) says about a run, as the report and the verdicts need it:
whether it is the paper's recipe, data and model, and which GPU reference run it reads. Pure functions of the
config, the paper profile (configs/paper.yaml) and the files under reference/. Shared layer: the workflow calls
these while it parses, so nothing here imports torch or runs a program."""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from qrepro.seeds import training_seeds

VARIANTS = ("full", "qlora")
RECIPE_KEYS = ("precision", "max_steps", "warmup_steps", "eval_steps", "eval_max_samples", "save_steps", "max_grad_norm")
VARIANT_RECIPE_KEYS = ("batch_size", "eval_batch_size", "learning_rate", "gradient_accumulation_steps", "optim",
                       "gradient_checkpointing")


def recipe(config: dict) -> tuple:
    """The paper's Tables 3-4 as this profile sets them, at its sequence length."""
    training = config["training"]
    return ({k: training[k] for k in RECIPE_KEYS},
            {v: {k: training[v][k] for k in VARIANT_RECIPE_KEYS} for v in VARIANTS},
            training["qlora"]["quantization"], training["qlora"]["lora"],
            config["data"]["max_length"], config["data"]["packing"])


def is_paper_recipe(config: dict, paper: dict) -> bool:
    """Whether this run trains with the paper's recipe (configs/paper.yaml) at its sequence length: a GPU run that
    does, at the paper's architecture, can judge the claims about time and memory ratios."""
    return recipe(config) == recipe(paper)


def run_settings(config: dict, paper: dict) -> dict:
    """What the report says about the run's setup; its numbers still come from results/."""
    data, model, lora = config["data"], config["model"], config["training"]["qlora"]["lora"]
    paper_data = (data["source"] == "hf" and data["hf"]["name"] == paper["data"]["hf"]["name"]
                  and data["hf"]["config"] == paper["data"]["hf"]["config"]
                  and data["max_length"] == paper["data"]["max_length"])
    return {"label": config["run_label"], "profile": config["profile"], "paper_recipe": is_paper_recipe(config, paper),
            "model_source": model["source"],
            "hub_id": model["hub_id"], "revision": model["revision"], "local_path": model["local_path"],
            "init": model["init"], "data_source": data["source"], "hf_name": data["hf"]["name"],
            "hf_config": data["hf"]["config"], "local_dir": data["local_dir"], "packing": data["packing"],
            "paper_data": paper_data, "lora_r": lora["r"], "lora_alpha": lora["alpha"],
            "seeds": training_seeds(config)}


def paper_setup(paper: dict) -> dict:
    """The paper's setup where the report names it (configs/paper.yaml is its one home)."""
    return {"hub_id": paper["model"]["hub_id"], "max_length": paper["data"]["max_length"],
            "max_steps": paper["training"]["max_steps"], "eval_steps": paper["training"]["eval_steps"],
            "hf_name": paper["data"]["hf"]["name"], "hf_config": paper["data"]["hf"]["config"],
            "precision": paper["training"]["precision"], "load_dtype": paper["model"]["load_dtype"]}


def config_digest(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()


def reference_dir(wanted: str, root: str | Path = "reference") -> str | None:
    """The committed GPU reference run the report reads: reference_run auto (the first folder), none, or a name."""
    found = sorted(p.parent.name for p in Path(root).glob("*/provenance.json"))
    if wanted == "none" or not found:
        return None
    if wanted == "auto":
        return f"{root}/{found[0]}"
    if wanted not in found:
        raise ValueError(f"reference_run={wanted!r}: no {root}/{wanted}/provenance.json (found: {found or 'none'})")
    return f"{root}/{wanted}"


def reference_name(gpu: str | None, profile: str) -> str:
    """The folder a reference run is written to, <gpu>-<profile>, e.g. h200-paper-arch."""
    slug = re.sub(r"^(nvidia|tesla)\s+", "", (gpu or "no-gpu").lower())
    return f"{re.sub(r'[^a-z0-9]+', '-', slug).strip('-')}-{profile}"
