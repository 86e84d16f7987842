"""The tests' tiny models: the one home of every tiny architecture in tests/ and bench/.

Each entry of TINY is a model.architecture block as a profile declares it (model_type included), built through the
library's own qrepro.model.causal_lm.build_config. Sizes stay multiples of 64 where a linear layer's input is
(bitsandbytes' CPU 4-bit block layout), and tiny: hidden 64, 2 layers, vocabulary 1000 unless a test says otherwise.
A test that needs another size passes it explicitly (tiny_arch("llama", hidden_size=128)), so the change is visible.
"""
from __future__ import annotations

import copy

from conftest import ROOT
from qrepro.config_checks import merged_profile

VOCAB = 1000
_SHAPE = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, intermediate_size=128,
              max_position_embeddings=256, rms_norm_eps=1e-5, rope_theta=1e4)

TINY = {
    # the paper's layout (TinyLlama): untied embeddings, default rope, grouped-query attention
    "llama": dict(model_type="llama", **_SHAPE, tie_word_embeddings=False),
    # Llama-3: grouped-query attention, tied embeddings (as Llama-3.2-1B), llama3 rope scaling
    "llama3": dict(model_type="llama", **{**_SHAPE, "rope_theta": 500000.0}, tie_word_embeddings=True,
                   rope_scaling=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                                     original_max_position_embeddings=64)),
    # Qwen2: biases on q, k and v; tied embeddings (as Qwen2.5-0.5B)
    "qwen2": dict(model_type="qwen2", **_SHAPE, tie_word_embeddings=True),
    # Mistral: head_dim 32, not hidden / heads = 16 (q_proj 64 -> 128); its sliding window (4096) is longer than any
    # sequence here
    "mistral": dict(model_type="mistral", **_SHAPE, tie_word_embeddings=False, head_dim=32),
    # Phi-3: fused qkv_proj and gate_up_proj
    "phi3": dict(model_type="phi3", **_SHAPE, tie_word_embeddings=False),
    # Gemma: one KV head (multi-query, as gemma-2b), head_dim 32, tied embeddings, GELU
    "gemma": dict(model_type="gemma", **{**_SHAPE, "num_key_value_heads": 1}, tie_word_embeddings=True, head_dim=32),
}
# the five families the issue names (tests/test_families.py runs each)
FIVE_FAMILIES = ("llama3", "qwen2", "mistral", "phi3", "gemma")


def tiny_arch(family: str = "llama", **changes) -> dict:
    """A copy of a family's tiny architecture, with the keys a test changes."""
    return {**copy.deepcopy(TINY[family]), **changes}


def tiny_config(family: str = "llama", vocab: int = VOCAB, bos: int = 1, eos: int = 2, **changes):
    from qrepro.model.causal_lm import build_config
    return build_config(tiny_arch(family, **changes), vocab, bos, eos)


def tiny_model(family: str = "llama", vocab: int = VOCAB, seed: int = 0, bos: int = 1, eos: int = 2, **changes):
    """The family's tiny model with random weights, on the CPU."""
    from qrepro.model.causal_lm import random_model
    return random_model(tiny_config(family, vocab, bos, eos, **changes), seed=seed)


def save_tiny_model(folder, family: str = "llama", vocab: int = VOCAB, seed: int = 0, dtype=None, bos: int = 1,
                    eos: int = 2, **changes) -> str:
    """tiny_model saved as safetensors into folder (a model folder the library loads); dtype: a torch dtype or None."""
    model = tiny_model(family, vocab, seed, bos, eos, **changes)
    (model.to(dtype) if dtype is not None else model).save_pretrained(folder)
    return str(folder)


def paper_architecture() -> dict:
    """TinyLlama-1.1B's architecture as the paper profile declares it (configs/paper.yaml over config.yaml)."""
    return merged_profile(ROOT / "config.yaml", ROOT / "configs/paper.yaml")["model"]["architecture"]
