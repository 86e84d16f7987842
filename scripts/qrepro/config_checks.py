"""Cross-field configuration checks that a JSON schema cannot express.

Runs while Snakemake parses the workflow, before any job: no torch import here.
"""
from __future__ import annotations

from pathlib import Path

from qrepro.hardware import cuda_visible_without_torch


class ConfigError(ValueError):
    pass


def problems(config: dict, cuda: bool | None = None, check_device: bool = True) -> list[str]:
    """Every problem found, each naming the key, the bad value and what is allowed.

    check_device=False skips the checks that need this machine to have CUDA: for dry runs and for
    targets that never train or evaluate (the structure metrics run on the meta device)."""
    cuda = cuda_visible_without_torch() if cuda is None else cuda
    found = []
    data, model, training = config["data"], config["model"], config["training"]
    arch = model["architecture"]

    if arch is None:
        if model["source"] == "pretrain" or model["init"] == "random":
            found.append("model.architecture is null, but model.source=pretrain (or model.init=random) builds the "
                         "model from it; declare it (model_type, sizes) or load a hub/local model")
    else:
        found += _architecture_problems(arch, data["max_length"])
    if training["step_time_warmup"] >= training["max_steps"]:
        found.append(f"training.step_time_warmup={training['step_time_warmup']} leaves no step to time out of "
                     f"training.max_steps={training['max_steps']}; lower it")
    if config["probe"]["warmup_steps"] >= config["probe"]["steps"]:
        found.append(f"probe.warmup_steps={config['probe']['warmup_steps']} leaves no step to time out of "
                     f"probe.steps={config['probe']['steps']}; lower it")
    if data["source"] == "local":
        found += _path_problem("data.local_dir", data["local_dir"])
    if model["source"] == "local":
        found += _path_problem("model.local_path", model["local_path"])
    if model["source"] == "hub" and not model["hub_id"]:
        found.append("model.hub_id must name a model when model.source is hub")
    if model["source"] == "pretrain" and model["init"] == "pretrained" and data["source"] == "hf":
        found.append("model.source=pretrain needs a pretraining portion, which data.source=hf does not have; "
                     "use data.source synthetic or local (with pretrain.txt), or model.source hub/local")
    if model["source"] != "pretrain" and config["tokenizer"]["source"] == "train":
        found.append(f"tokenizer.source=train only fits model.source=pretrain; a {model['source']} model "
                     "needs tokenizer.source=model (its own vocabulary)")
    if check_device and training["precision"] == "fp16" and not cuda:
        found.append("training.precision=fp16 needs a CUDA device and none is visible; on CPU, accelerate "
                     "would silently train in fp32. Allowed here: auto, bf16, fp32")
    processes = training["num_processes"]
    for variant in ("full", "qlora"):
        accumulation = training[variant]["gradient_accumulation_steps"]
        if accumulation % processes:
            found.append(f"training.num_processes={processes} must divide training.{variant}."
                         f"gradient_accumulation_steps={accumulation}: each process accumulates its share, so that an "
                         "optimizer step sees the recipe's global batch")
    if check_device and not config["allow_cpu"] and not cuda:
        found.append("allow_cpu=false (this profile is meant for a CUDA GPU) and no CUDA device is visible; "
                     "run on a GPU machine, or override with --config allow_cpu=True")
    return found


def _architecture_problems(arch: dict, max_length: int) -> list[str]:
    found = []
    if "head_dim" not in arch and arch["hidden_size"] % arch["num_attention_heads"]:
        found.append(f"model.architecture.num_attention_heads={arch['num_attention_heads']} must divide "
                     f"hidden_size={arch['hidden_size']} (or declare head_dim, where the family takes one)")
    if arch["num_attention_heads"] % arch["num_key_value_heads"]:
        found.append(f"model.architecture.num_key_value_heads={arch['num_key_value_heads']} must divide "
                     f"num_attention_heads={arch['num_attention_heads']}")
    if max_length > arch["max_position_embeddings"]:
        found.append(f"data.max_length={max_length} exceeds the model's maximum positions "
                     f"(model.architecture.max_position_embeddings={arch['max_position_embeddings']})")
    return found


def _path_problem(key: str, value) -> list[str]:
    if not value:
        return [f"{key} must be set when its source is local"]
    if not Path(value).exists():
        return [f"{key}={value!r} does not exist; give an existing directory"]
    return []


def check(config: dict, cuda: bool | None = None, check_device: bool = True) -> None:
    found = problems(config, cuda, check_device)
    if found:
        raise ConfigError("Invalid configuration:\n  - " + "\n  - ".join(found))


def merged_profile(*sources) -> dict:
    """Profiles merged left to right, as `snakemake --configfile a.yaml b.yaml` merges them over config.yaml:
    Snakemake's own update_config (nested mappings merged key by key, any other value replaced, lists included).
    Each source is a YAML (or JSON) file path or an already loaded dict; no source is modified.

    merged_profile("config.yaml", "configs/paper.yaml") is the paper profile. No torch import (parse time)."""
    import copy

    import yaml
    from snakemake.utils import update_config

    merged: dict = {}
    for source in sources:
        profile = source if isinstance(source, dict) else yaml.safe_load(Path(source).read_text())
        update_config(merged, copy.deepcopy(profile or {}))
    return merged
