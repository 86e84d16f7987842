"""Building, loading and counting causal language models of any family transformers supports."""
from __future__ import annotations

from pathlib import Path

import torch

from qrepro.hub import hub_error

# The families the pretrain and random paths build from a declared architecture (model.architecture.model_type);
# schemas/config.schema.yaml lists the keys each accepts. A hub or local model may be any AutoModelForCausalLM.
BUILDABLE_FAMILIES = ("llama", "qwen2", "mistral", "phi3", "gemma")


def build_config(arch: dict, vocab_size: int, bos_token_id: int, eos_token_id: int):
    """The transformers config of the declared family (arch["model_type"]), every declared key passed as given:
    a key the family's config class does not take is refused, so a typo cannot silently build another model."""
    import copy
    import inspect

    from transformers import AutoConfig, CONFIG_MAPPING
    family = arch.get("model_type", "llama")
    if family not in BUILDABLE_FAMILIES:
        raise ValueError(f"model.architecture.model_type {family!r} cannot be built here; one of "
                         f"{', '.join(BUILDABLE_FAMILIES)} (a hub or local model of any family loads with "
                         "model.source: hub | local)")
    keys = copy.deepcopy({k: v for k, v in arch.items() if k not in ("model_type", "vocab_size")})  # transformers edits them
    accepted = set(inspect.signature(CONFIG_MAPPING[family].__init__).parameters) | {"rope_theta", "rope_scaling"}
    unknown = sorted(set(keys) - accepted)
    if unknown:
        raise ValueError(f"model.architecture: {', '.join(unknown)} is not a {family} setting "
                         f"(transformers' {CONFIG_MAPPING[family].__name__} does not take it)")
    return AutoConfig.for_model(family, vocab_size=vocab_size, bos_token_id=bos_token_id, eos_token_id=eos_token_id,
                                pad_token_id=eos_token_id, attn_implementation="sdpa", **keys)


def count_parameters(model) -> tuple[int, int]:
    """(base parameters, trainable parameters).

    Base parameters exclude LoRA adapters and count a 4-bit weight by its logical shape, not by the
    packed uint8 storage, so full and QLoRA report the same total, as the paper's Table 12 does.
    """
    total = trainable = 0
    for name, param in model.named_parameters():
        if param.requires_grad:
            trainable += param.numel()
        if "lora_" in name:
            continue
        quant_state = getattr(param, "quant_state", None)
        total += quant_state.shape.numel() if quant_state is not None else param.numel()
    return total, trainable


def pretrained_config(path_or_id: str, revision: str | None = None):
    """(config, where it was read) of a model folder, or of a hub model at a pinned revision from the hub cache."""
    from transformers import AutoConfig
    try:
        config = AutoConfig.from_pretrained(path_or_id, revision=revision, trust_remote_code=False)
    except OSError as err:
        if Path(path_or_id).exists():
            raise
        raise hub_error(f"the config of {path_or_id}", "model.source: local with model.local_path") from err
    where = f"{path_or_id}/config.json" if Path(path_or_id).exists() else f"hub: {path_or_id}@{revision or 'main'}"
    return config, where


def meta_model(config):
    """The model of a config on the meta device: every module and shape, no weights, no memory, the RNG untouched.
    config: a transformers config, or a model folder (or hub id) whose config.json is read."""
    from transformers import AutoConfig, AutoModelForCausalLM
    if isinstance(config, (str, Path)):
        config = AutoConfig.from_pretrained(config, trust_remote_code=False)
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config)


def load_pretrained(path_or_id: str, revision: str | None = None, **kwargs):
    """Load a causal LM from safetensors only; never run remote code."""
    from transformers import AutoModelForCausalLM
    try:
        return AutoModelForCausalLM.from_pretrained(path_or_id, revision=revision, use_safetensors=True,
                                                    trust_remote_code=False, **kwargs)
    except OSError as err:
        if Path(path_or_id).exists():
            raise
        raise hub_error(f"model {path_or_id}", "model.source: local with model.local_path") from err


def random_model(config, seed: int):
    from transformers import AutoModelForCausalLM
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(config)
