"""Building, loading and counting LLaMA models for both variants."""
from __future__ import annotations

from pathlib import Path

import torch

from qrepro.hub import hub_error



def llama_config(arch: dict, vocab_size: int, bos_token_id: int, eos_token_id: int):
    from transformers import LlamaConfig
    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=arch["hidden_size"],
        num_hidden_layers=arch["num_hidden_layers"],
        num_attention_heads=arch["num_attention_heads"],
        num_key_value_heads=arch["num_key_value_heads"],
        intermediate_size=arch["intermediate_size"],
        max_position_embeddings=arch["max_position_embeddings"],
        tie_word_embeddings=arch["tie_word_embeddings"],
        rms_norm_eps=arch["rms_norm_eps"],
        rope_theta=arch["rope_theta"],
        bos_token_id=bos_token_id,
        eos_token_id=eos_token_id,
        pad_token_id=eos_token_id,
        attn_implementation="sdpa",
    )


def linear_shapes(config) -> dict[str, tuple[int, int]]:
    """(in_features, out_features) of each projection in one decoder layer of a LLaMA config."""
    hidden, inter = config.hidden_size, config.intermediate_size
    head_dim = getattr(config, "head_dim", None) or hidden // config.num_attention_heads
    q_out = config.num_attention_heads * head_dim
    kv_out = config.num_key_value_heads * head_dim
    return {"q_proj": (hidden, q_out), "k_proj": (hidden, kv_out), "v_proj": (hidden, kv_out),
            "o_proj": (q_out, hidden), "gate_proj": (hidden, inter), "up_proj": (hidden, inter),
            "down_proj": (inter, hidden)}


def expected_lora_params(config, target_modules, r: int) -> int:
    """LoRA adds A (r × in) and B (out × r) to every targeted projection in every layer."""
    shapes = linear_shapes(config)
    return config.num_hidden_layers * sum(r * (shapes[m][0] + shapes[m][1]) for m in target_modules)


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


def meta_parameter_counts(config, lora: dict | None = None) -> tuple[object, int, int]:
    """(config, total parameters, LoRA parameters) from the architecture alone: the model is built on the meta
    device (shapes, no weights, no memory; the RNG is not touched) and counted with count_parameters, the LoRA
    parameters by expected_lora_params for lora's target_modules and r (0 without lora).

    config: a transformers config, or a model folder (or hub id) whose config.json is read."""
    from transformers import AutoConfig, AutoModelForCausalLM
    if isinstance(config, (str, Path)):
        config = AutoConfig.from_pretrained(config)
    with torch.device("meta"):
        total, _ = count_parameters(AutoModelForCausalLM.from_config(config))
    lora_params = expected_lora_params(config, lora["target_modules"], lora["r"]) if lora else 0
    return config, total, lora_params


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
